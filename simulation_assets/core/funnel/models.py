"""The three models of tracking plan section 7, trained on event-built features with a time split.

* purchase propensity: P(purchase within 7 days of login), all logged-in persons;
* churn propensity: P(no completed job in the 30 days after the first week, or a
  canceled subscription), persons with a completed job in their first week;
* LTV: revenue within 30/60/90 days of login, predicted on day 7.

Metrics: ROC AUC, Brier score, expected calibration error (ECE) for the
classifiers; MAE and its improvement over the best constant (the training median)
for LTV (squared error on log1p(revenue)). :class:`ModelThresholds` are what a model trained on signal must reach;
the same models trained on shuffled labels must not.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel

from simulation_assets.core.funnel.config import DEFAULT_SIGNALS, ModelThresholds, SignalDirection
from simulation_assets.core.funnel.features import (
    CATEGORICAL_FEATURES,
    CHURN_FEATURES,
    LTV_FEATURES,
    LTV_HORIZONS,
    PURCHASE_FEATURES,
    time_split,
)
from simulation_assets.core.rng import stream

__all__ = ["ClassifierMetrics", "ModelReport", "ModelThresholds", "RegressorMetrics", "train_and_evaluate"]


MIN_TRAIN_ROWS = 50
CALIBRATION_GROUPS = ("device", "utm_source", "email_domain_type", "geo")
TOP_FEATURES = 15
"""Fewer training rows than this and a model is not trained (its metrics say why)."""


class GroupCalibration(BaseModel):
    """Observed rate vs mean prediction of the test rows of one group (e.g. device = mobile)."""

    group: str
    rows: int
    observed: float
    predicted: float


class ClassifierMetrics(BaseModel):
    """Held-out quality of one classifier, what it relies on, and how it responds to the named signals."""

    rows_train: int
    rows_test: int
    base_rate: float
    roc_auc: float | None
    brier: float
    brier_skill: float
    ece: float
    passed: bool
    reason: str
    feature_importance: dict[str, float] = {}
    """Drop in ROC AUC when the feature's test values are shuffled (permutation importance), top first."""
    calibration_by_group: dict[str, list[GroupCalibration]] = {}
    signal_effects: dict[str, float] = {}
    """Mean predicted probability with the signal high minus with it low, all else as observed."""


class RegressorMetrics(BaseModel):
    """Held-out quality of one LTV horizon."""

    horizon_days: int
    rows_train: int
    rows_test: int
    mean_revenue: float
    mae: float
    mae_constant: float
    mae_improvement: float
    passed: bool
    reason: str
    feature_importance: dict[str, float] = {}
    """Rise in MAE when the feature's test values are shuffled (permutation importance), top first."""
    signal_effects: dict[str, float] = {}
    """Mean predicted revenue with the signal high minus with it low, all else as observed."""


class ModelReport(BaseModel):
    """All three models' metrics; ``passed`` when every model meets its threshold."""

    shuffled_labels: bool
    purchase: ClassifierMetrics
    churn: ClassifierMetrics
    ltv: list[RegressorMetrics]
    thresholds: ModelThresholds

    @property
    def passed(self) -> bool:
        return self.purchase.passed and self.churn.passed and all(m.passed for m in self.ltv)


def _matrix(
    frame: pl.DataFrame, columns: tuple[str, ...], categories: dict[str, list[str]]
) -> tuple[np.ndarray, list[bool]]:
    """Return a float matrix (categoricals as integer codes fixed on the training rows) and the categorical mask."""
    cols, mask = [], []
    for name in columns:
        if name in CATEGORICAL_FEATURES:
            lookup = {v: i for i, v in enumerate(categories[name])}
            codes = np.array([lookup.get(v, -1) for v in frame[name].to_list()], dtype=np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
            mask.append(True)
        else:
            cols.append(frame[name].cast(pl.Float64).to_numpy())
            mask.append(False)
    return np.column_stack(cols) if cols else np.empty((frame.height, 0)), mask


def signal_levels(train: np.ndarray) -> tuple[float, float]:
    """Return the low and high value a signal is set to: 0 and 1 for flags, else the 10th and 90th percentile."""
    values = train[~np.isnan(train)]
    if values.size == 0:
        return 0.0, 0.0
    if np.all(np.isin(values, (0.0, 1.0))):
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, (10, 90)))
    if low == high and np.all(values == np.round(values)):
        high = low + 1  # a count that rarely moves: one more than usual
    return low, high


def signal_effects(
    predict,  # noqa: ANN001
    x_train: np.ndarray,
    x_test: np.ndarray,
    columns: tuple[str, ...],
    signals: tuple[str, ...],
) -> dict[str, float]:
    """Return, per named numeric signal, mean prediction with it set high minus set low on the test rows."""
    out = {}
    for j, name in enumerate(columns):
        if name in CATEGORICAL_FEATURES or name not in signals:
            continue
        low, high = signal_levels(x_train[:, j])
        if low == high:
            continue
        lo, hi = x_test.copy(), x_test.copy()
        lo[:, j], hi[:, j] = low, high
        out[name] = round(float(np.mean(predict(hi)) - np.mean(predict(lo))), 6)
    return out


def permutation_importance(
    predict,  # noqa: ANN001
    x_test: np.ndarray,
    y_test: np.ndarray,
    columns: tuple[str, ...],
    score,  # noqa: ANN001
    seed: int,
    repeats: int = 1,
) -> dict[str, float]:
    """Return the top features by permutation importance: the score lost when a column's values are shuffled.

    ``score(y, prediction)`` is higher-is-better. Every shuffled copy of the test rows goes
    through the model in one prediction call instead of one call per feature and repeat
    (scikit-learn's ``permutation_importance``, one call per feature and repeat, took 24 s of
    a 31 s training on the loaded 2-core machine; batched, the whole training took 21 s).
    """
    rng = stream(seed, "funnel", "permutation_importance")
    n, k = x_test.shape
    base = score(y_test, predict(x_test))
    blocks = []
    for _ in range(repeats):
        for j in range(k):
            block = x_test.copy()
            block[:, j] = block[rng.permutation(n), j]
            blocks.append(block)
    predictions = predict(np.vstack(blocks)).reshape(repeats, k, n)
    drops = np.array([[base - score(y_test, predictions[r, j]) for j in range(k)] for r in range(repeats)])
    ranked = sorted(zip(columns, drops.mean(axis=0)), key=lambda kv: -kv[1])
    return {name: round(float(value), 5) for name, value in ranked[:TOP_FEATURES]}


def _calibration_by_group(
    test: pl.DataFrame, y: np.ndarray, p: np.ndarray
) -> dict[str, list[GroupCalibration]]:
    out: dict[str, list[GroupCalibration]] = {}
    for column in CALIBRATION_GROUPS:
        if column not in test.columns:
            continue
        values = np.array(test[column].fill_null("unknown").to_list(), dtype=object)
        rows = []
        for group in sorted(set(values)):
            m = values == group
            rows.append(
                GroupCalibration(
                    group=str(group),
                    rows=int(m.sum()),
                    observed=round(float(y[m].mean()), 4),
                    predicted=round(float(p[m].mean()), 4),
                )
            )
        out[column] = rows
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Return the weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / len(y)) if len(y) else 0.0


def _labels(train: pl.DataFrame, label: str, shuffle: bool, seed: int, name: str) -> np.ndarray:
    y = train[label].cast(pl.Float64).to_numpy()
    if shuffle:
        y = stream(seed, "funnel", "shuffle", name).permutation(y)
    return y


def _classifier(
    name: str,
    frame: pl.DataFrame,
    features: tuple[str, ...],
    label: str,
    auc_min: float,
    thresholds: ModelThresholds,
    shuffle: bool,
    seed: int,
    signals: tuple[str, ...] = (),
) -> ClassifierMetrics:
    train, test = time_split(frame)
    if train.height < MIN_TRAIN_ROWS or test.height == 0:
        return ClassifierMetrics(
            rows_train=train.height,
            rows_test=test.height,
            base_rate=0.0,
            roc_auc=None,
            brier=0.0,
            brier_skill=0.0,
            ece=0.0,
            passed=False,
            reason="too few rows to train",
        )
    from sklearn.ensemble import HistGradientBoostingClassifier  # imported here: sklearn is slow to import
    from sklearn.metrics import brier_score_loss, roc_auc_score

    categories = {c: sorted({v for v in train[c].to_list() if v is not None}) for c in CATEGORICAL_FEATURES}
    x_train, mask = _matrix(train, features, categories)
    x_test, _ = _matrix(test, features, categories)
    y_train = _labels(train, label, shuffle, seed, name)
    y_test = test[label].cast(pl.Float64).to_numpy()
    model = HistGradientBoostingClassifier(
        max_iter=80,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=mask,
        random_state=seed % (2**31),
        early_stopping=False,
    )
    importance: dict[str, float] = {}
    effects: dict[str, float] = {}
    if len(np.unique(y_train)) < 2:
        p = np.full(len(y_test), float(y_train.mean()))
    else:
        model.fit(x_train, y_train)
        p = model.predict_proba(x_test)[:, 1]
        effects = signal_effects(lambda x: model.predict_proba(x)[:, 1], x_train, x_test, features, signals)
        if not shuffle and len(np.unique(y_test)) == 2:
            importance = permutation_importance(
                lambda x: model.predict_proba(x)[:, 1], x_test, y_test, features, roc_auc_score, seed
            )
    base = float(y_train.mean())
    auc = float(roc_auc_score(y_test, p)) if len(np.unique(y_test)) == 2 else None
    brier = float(brier_score_loss(y_test, p))
    brier_ref = float(brier_score_loss(y_test, np.full(len(y_test), base)))
    ece = expected_calibration_error(y_test, p)
    reasons = []
    if test.height < thresholds.min_test_rows:
        reasons.append(f"only {test.height} test rows (< {thresholds.min_test_rows})")
    if auc is None or auc < auc_min:
        reasons.append(f"ROC AUC {auc if auc is None else round(auc, 3)} < {auc_min}")
    # ECE over 10 bins is noisy on small test sets: allow half a binomial standard error per bin on top.
    ece_limit = thresholds.ece_max + 0.5 / np.sqrt(max(test.height, 1))
    if ece > ece_limit:
        reasons.append(f"ECE {ece:.3f} > {ece_limit:.3f}")
    return ClassifierMetrics(
        rows_train=train.height,
        rows_test=test.height,
        base_rate=round(base, 5),
        roc_auc=None if auc is None else round(auc, 4),
        brier=round(brier, 5),
        brier_skill=round(1 - brier / brier_ref, 4) if brier_ref else 0.0,
        ece=round(ece, 4),
        passed=not reasons,
        reason="; ".join(reasons) or "ok",
        feature_importance=importance,
        calibration_by_group=_calibration_by_group(test, y_test, p),
        signal_effects=effects,
    )


def _ltv(
    frame: pl.DataFrame,
    horizon: int,
    thresholds: ModelThresholds,
    shuffle: bool,
    seed: int,
    signals: tuple[str, ...] = (),
) -> RegressorMetrics:
    label = f"revenue_{horizon}d"
    train, test = time_split(frame)
    if train.height < MIN_TRAIN_ROWS or test.height == 0:
        return RegressorMetrics(
            horizon_days=horizon,
            rows_train=train.height,
            rows_test=test.height,
            mean_revenue=0.0,
            mae=0.0,
            mae_constant=0.0,
            mae_improvement=0.0,
            passed=False,
            reason="too few rows to train",
        )
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import mean_absolute_error

    categories = {c: sorted({v for v in train[c].to_list() if v is not None}) for c in CATEGORICAL_FEATURES}
    x_train, mask = _matrix(train, LTV_FEATURES, categories)
    x_test, _ = _matrix(test, LTV_FEATURES, categories)
    y_train = _labels(train, label, shuffle, seed, f"ltv{horizon}")
    y_test = test[label].to_numpy()
    model = HistGradientBoostingRegressor(
        loss="squared_error",
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        categorical_features=mask,
        random_state=seed % (2**31),
        early_stopping=False,
    )
    # Revenue is mostly zero with a long tail (yearly plans): fit log1p(revenue) so a few large orders
    # do not dominate, and transform back; this targets the typical revenue, which is what MAE rewards.
    model.fit(x_train, np.log1p(np.maximum(y_train, 0.0)))
    pred = np.expm1(model.predict(x_test))
    effects = signal_effects(lambda x: np.expm1(model.predict(x)), x_train, x_test, LTV_FEATURES, signals)
    importance = {}
    if not shuffle and horizon == LTV_HORIZONS[-1]:
        # permutation importance on the log scale the model was fitted on (MAE of log1p revenue)
        importance = permutation_importance(
            model.predict,
            x_test,
            np.log1p(np.maximum(y_test, 0.0)),
            LTV_FEATURES,
            lambda y, p: -mean_absolute_error(y, p),
            seed,
        )
    mae = float(mean_absolute_error(y_test, pred))
    const = float(mean_absolute_error(y_test, np.full(len(y_test), np.median(y_train))))
    improvement = 1 - mae / const if const > 0 else 0.0
    reasons = []
    if test.height < thresholds.min_test_rows:
        reasons.append(f"only {test.height} test rows (< {thresholds.min_test_rows})")
    if improvement < thresholds.ltv_mae_improvement_min:
        reasons.append(f"MAE improvement {improvement:.3f} < {thresholds.ltv_mae_improvement_min}")
    return RegressorMetrics(
        horizon_days=horizon,
        rows_train=train.height,
        rows_test=test.height,
        mean_revenue=round(float(y_test.mean()), 4),
        mae=round(mae, 4),
        mae_constant=round(const, 4),
        mae_improvement=round(improvement, 4),
        passed=not reasons,
        reason="; ".join(reasons) or "ok",
        feature_importance=importance,
        signal_effects=effects,
    )


def train_and_evaluate(
    features: pl.DataFrame,
    thresholds: ModelThresholds | None = None,
    shuffle_labels: bool = False,
    seed: int = 0,
    signals: tuple[SignalDirection, ...] = DEFAULT_SIGNALS,
) -> ModelReport:
    """Train the three models on the earlier persons, evaluate on the later ones, return the report.

    ``shuffle_labels=True`` permutes the training labels (a no-signal baseline that must fail).
    Each model reports its permutation importances (top 15; LTV at 90 days only), the
    classifiers their calibration per device, source, e-mail domain and geo, and every model
    the effect of the ``signals`` named for it.
    """
    thresholds = thresholds or ModelThresholds()
    if len(time_split(features)[0]) < MIN_TRAIN_ROWS:
        # Nothing to train: skip importing scikit-learn (~2 s), e.g. for a forecast from a tiny cohort.
        return _train_all(features, thresholds, shuffle_labels, seed, signals)
    import sklearn.ensemble  # noqa: F401  (loads OpenMP, so the limit below applies to it)
    from threadpoolctl import threadpool_limits

    # One thread: identical results on any machine, and fair to the other work on a small box. The
    # limit only reaches libraries already loaded: before sklearn was imported first, the first
    # training of a process ran on every core and took 50 s instead of 3 s on a busy 2-core machine.
    with threadpool_limits(1):
        return _train_all(features, thresholds, shuffle_labels, seed, signals)


def _train_all(
    features: pl.DataFrame,
    thresholds: ModelThresholds,
    shuffle_labels: bool,
    seed: int,
    signals: tuple[SignalDirection, ...],
) -> ModelReport:
    def named(model: str) -> tuple[str, ...]:
        return tuple(s.feature for s in signals if s.model == model)

    purchase = _classifier(
        "purchase",
        features,
        PURCHASE_FEATURES,
        "label_purchased_7d",
        thresholds.purchase_auc_min,
        thresholds,
        shuffle_labels,
        seed,
        named("purchase"),
    )
    churn_rows = features.filter(pl.col("had_job_7d"))
    churn = _classifier(
        "churn",
        churn_rows,
        CHURN_FEATURES,
        "label_churned",
        thresholds.churn_auc_min,
        thresholds,
        shuffle_labels,
        seed,
        named("churn"),
    )
    ltv = [_ltv(features, h, thresholds, shuffle_labels, seed, named(f"ltv_{h}")) for h in LTV_HORIZONS]
    return ModelReport(
        shuffled_labels=shuffle_labels, purchase=purchase, churn=churn, ltv=ltv, thresholds=thresholds
    )
