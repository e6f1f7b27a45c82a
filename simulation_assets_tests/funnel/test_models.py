"""The three models beat their thresholds on simulated signal and fail on shuffled labels."""

from __future__ import annotations

import polars as pl
import pytest

from simulation_assets.core.funnel.features import PURCHASE_FEATURES, time_split


@pytest.fixture(scope="module")
def features(model_features) -> pl.DataFrame:
    return model_features


def test_features_have_one_row_per_logged_in_person_and_no_monetization_leak(features) -> None:
    assert features["person_id"].n_unique() == features.height > 5_000
    assert features["person_id"].str.starts_with("usr_").all()
    assert not any("checkout" in f or "purchase" in f for f in PURCHASE_FEATURES)
    assert 0.04 < features["label_purchased_7d"].mean() < 0.12
    assert (features["revenue_90d"] >= features["revenue_30d"] - 1e-9).all()


def test_time_split_trains_on_earlier_logins(features) -> None:
    train, test = time_split(features)
    assert train["login_at"].max() <= test["login_at"].min()
    assert test.height == pytest.approx(0.3 * features.height, abs=1)


def test_models_trained_on_signal_pass_and_on_shuffled_labels_fail(model_report, shuffled_report) -> None:
    real, shuffled = model_report, shuffled_report
    assert real.passed, real
    assert real.purchase.roc_auc > 0.75 and real.churn.roc_auc > 0.57
    assert all(m.mae_improvement > 0.15 for m in real.ltv)
    assert not shuffled.purchase.passed and not shuffled.churn.passed
    assert not any(m.passed for m in shuffled.ltv)
    assert shuffled.purchase.roc_auc < 0.65 and shuffled.churn.roc_auc < 0.56
