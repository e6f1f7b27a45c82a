"""Category B, activation: signup, the auth e-mail loop, login (identity stitching), free credits.

``activation_complete`` fires once ``login_success`` and ``credits_granted`` happened and
the person reached the upload screen (``upload_view``), as the plan defines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import MINUTE, SECOND, lognormal_ms
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.cohort.states import FunnelPath
from simulation_assets.core.funnel.config import CohortConfig


@dataclass(frozen=True)
class ActivationTimes:
    """Epoch milliseconds of each clicker's login, credit grant and activation (one entry per clicker)."""

    login: np.ndarray
    credit: np.ndarray
    activation: np.ndarray


def emit_activation(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    t_cta: np.ndarray,
    session: pl.Series,
) -> ActivationTimes:
    """Emit signup, the auth e-mail events, login, credits, onboarding and activation; return their times."""
    n = len(t_cta)
    idx = np.arange(n, dtype=np.int64)
    cta, signed, logged, credited = path.clicked_cta, path.signed_up, path.logged_in, path.credited
    t_sstart = t_cta + gen.integers(SECOND, 3 * SECOND, size=n)
    t_submit = t_sstart + lognormal_ms(gen, 40 * SECOND, 0.4, n)
    t_sent = t_submit + SECOND
    t_deliv = t_sent + gen.integers(SECOND, 5 * SECOND, size=n)
    t_link = t_deliv + lognormal_ms(gen, 3 * MINUTE, 0.8, n)
    t_login = t_link + 1_500
    t_credit = t_login + 500
    t_onboard = t_login + 2 * SECOND
    t_upview = t_onboard + lognormal_ms(gen, 10 * SECOND, 0.5, n)
    t_activation = t_upview + 200
    blocks.add("signup_start", idx[cta], t_sstart[cta], session.filter(cta), page_path="/signup")
    blocks.add("signup_submit", idx[signed], t_submit[signed], session.filter(signed), page_path="/signup")
    blocks.add("auth_email_sent", idx[signed], t_sent[signed], session.filter(signed))
    blocks.add("auth_email_delivered", idx[signed], t_deliv[signed], session.filter(signed))
    opened = signed & (logged | (gen.random(n) < 0.3)) & (gen.random(n) < 0.7)
    t_open = t_deliv + ((t_link - t_deliv) * gen.uniform(0.2, 0.9, n)).astype(np.int64)
    blocks.add("auth_email_opened", idx[opened], t_open[opened], session.filter(opened))
    blocks.add(
        "auth_email_link_clicked",
        idx[logged],
        t_link[logged],
        session.filter(logged),
        page_path="/auth/callback",
    )
    blocks.add(
        "login_success", idx[logged], t_login[logged], session.filter(logged), page_path="/auth/callback"
    )
    blocks.add(
        "credits_granted",
        idx[credited],
        t_credit[credited],
        session.filter(credited),
        credits_added=config.free_credits,
        credits_before=0,
        credits_after=config.free_credits,
    )
    blocks.add(
        "onboarding_view", idx[logged], t_onboard[logged], session.filter(logged), page_path="/welcome"
    )
    blocks.add("upload_view", idx[credited], t_upview[credited], session.filter(credited), page_path="/app")
    blocks.add(
        "activation_complete",
        idx[credited],
        t_activation[credited],
        session.filter(credited),
        page_path="/app",
    )
    return ActivationTimes(login=t_login, credit=t_credit, activation=t_activation)
