"""Category G, compliance and account control: cookie consent (at landing and later), data export, deletion."""

from __future__ import annotations

import numpy as np

from simulation_assets.core.funnel.cohort.draws import DAY, HOUR, hex_ids
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.cohort.traits import bernoulli
from simulation_assets.core.funnel.config import CohortConfig


def emit_consent(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    landed: np.ndarray,
    t_land: np.ndarray,
    dwell: np.ndarray,
    session: object,
) -> None:
    """Emit ``cookie_consent_updated`` for the landers who answer the banner (section 9G consent state)."""
    n = len(landed)
    idx = np.arange(n, dtype=np.int64)
    consent = landed & (gen.random(n) < config.consent_banner_rate)
    ads_ok = gen.random(n) < 0.7
    blocks.add(
        "cookie_consent_updated",
        idx[consent],
        (t_land + dwell // 20)[consent],
        session.filter(consent),  # type: ignore[attr-defined]
        page_path="/",
        ads_allowed=ads_ok[consent],
        analytics_allowed=np.ones(int(consent.sum()), dtype=bool),
    )


def emit_account_control(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    churned: np.ndarray,
    logged_in: np.ndarray,
    purchased: np.ndarray,
    privacy_minded: np.ndarray,
    t_login: np.ndarray,
) -> None:
    """Emit later consent changes, data exports and account deletions.

    A few churned people export their data and delete their account between day 7 and day
    27 (buyers are left out, so no billing event ever follows a deleted account). Some of
    everyone else revisit their consent in the account settings within two months, most
    often to turn ads off; people who came through a privacy ad do it more.
    """
    n = len(churned)
    idx = np.arange(n, dtype=np.int64)
    day7 = t_login + 7 * DAY
    leaving = churned & logged_in & ~purchased & (gen.random(n) < config.deletion_rate_of_churned)
    t_leave = day7 + (gen.random(n) * 20 * DAY).astype(np.int64)
    leave_sess = hex_ids(gen, n, "sess_")
    export = leaving & (gen.random(n) < 0.3)
    blocks.add(
        "data_export_requested",
        idx[export],
        t_leave[export] - HOUR,
        leave_sess.filter(export),
        page_path="/account",
    )
    blocks.add(
        "account_deletion_started",
        idx[leaving],
        t_leave[leaving],
        leave_sess.filter(leaving),
        page_path="/account",
    )
    # the deletion completes a day later, server side: a session of its own
    blocks.add(
        "account_deleted", idx[leaving], t_leave[leaving] + DAY, hex_ids(gen, int(leaving.sum()), "sess_")
    )
    base = (
        np.log(config.consent_change_rate / (1 - config.consent_change_rate))
        if config.consent_change_rate > 0
        else -50.0
    )
    change = logged_in & ~leaving & bernoulli(gen, base + 1.2 * privacy_minded)
    t_change = t_login + ((1 + gen.random(n) * 59) * DAY).astype(np.int64)
    blocks.add(
        "cookie_consent_updated",
        idx[change],
        t_change[change],
        hex_ids(gen, int(change.sum()), "sess_"),
        page_path="/account/privacy",
        ads_allowed=(gen.random(n) < 0.15)[change],
        analytics_allowed=(gen.random(n) < 0.8)[change],
    )
