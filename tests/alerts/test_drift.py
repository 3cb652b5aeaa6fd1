"""Drift maths checked against hand-computed values, and drift rules evaluated from pushed distributions."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest

from apps.alerts import drift
from apps.alerts.distributions import DistributionsRejected, distributions_push
from apps.alerts.models import Alert, Distribution
from apps.alerts.services import evaluation_cycle

from .conftest import T0, hour
from .factories import RuleFactory


def test_psi_of_two_share_vectors():
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75)
    expected = 0.25 * math.log(2) + (-0.25) * math.log(0.5 / 0.75)
    assert drift.psi_from_shares([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert expected == pytest.approx(0.2747, abs=1e-4)
    assert drift.psi_from_shares([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0


def test_zero_shares_are_replaced_before_the_logarithm():
    # The reference's empty bin becomes 0.0001 (its smallest non-zero share, 1.0, is above 0.0001).
    expected = (1 - 0.5) * math.log(1 / 0.5) + (0.0001 - 0.5) * math.log(0.0001 / 0.5)
    assert drift.psi_from_shares([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    # A tiny smallest share (0.00005 <= 0.0001): zeros become that share / 10^6.
    eps = 0.00005 / 1e6
    ref, cur = [0.99995, 0.00005, 0.0], [0.5, 0.25, 0.25]
    expected = sum((r - c) * math.log(r / c) for r, c in zip([0.99995, 0.00005, eps], cur, strict=True))
    assert drift.psi_from_shares(ref, cur) == pytest.approx(expected)


def test_histograms_and_categories_compare_by_their_own_bins():
    ref = drift.DistributionData("numeric", edges=[0, 1, 2], counts=[50, 50])
    cur = drift.DistributionData("numeric", edges=[0, 1, 2], counts=[25, 75])
    assert drift.compare(ref, cur, "psi").psi == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(0.5 / 0.75))
    ref = drift.DistributionData("categorical", categories={"a": 40, "b": 60})
    cur = drift.DistributionData("categorical", categories={"b": 30, "c": 30})
    # Union a, b, c: reference 0.4, 0.6, 0 -> 0.0001; current 0 -> 0.0001, 0.5, 0.5.
    expected = (
        (0.4 - 0.0001) * math.log(0.4 / 0.0001)
        + (0.6 - 0.5) * math.log(0.6 / 0.5)
        + (0.0001 - 0.5) * math.log(0.0001 / 0.5)
    )
    assert drift.compare(ref, cur, "psi").psi == pytest.approx(expected)


def test_samples_compared_with_a_histogram_are_binned_on_its_edges():
    ref = drift.DistributionData("numeric", edges=[0, 10, 20], counts=[30, 30])
    # 45 samples below 10 (one of them below the first edge, counted in the first bin) and 15 above.
    cur = drift.DistributionData("numeric", samples=[-1.0] + [5.0] * 44 + [15.0] * 15)
    shares = drift.shares(ref, cur)
    assert shares == ([0.5, 0.5], [0.75, 0.25])


def test_ks_statistic_and_p_value_for_shifted_samples():
    ref = drift.DistributionData("numeric", samples=[float(v) for v in range(1, 51)])
    cur = drift.DistributionData("numeric", samples=[float(v) for v in range(26, 76)])
    result = drift.compare(ref, cur, "ks")
    # The empirical CDFs differ most at 25: the reference has 25 of 50 values at or below it, the current none.
    assert result.ks_statistic == pytest.approx(0.5)
    assert result.ks_pvalue < 0.001
    same = drift.compare(ref, drift.DistributionData("numeric", samples=list(ref.samples)), "ks")
    assert same.ks_statistic == 0 and same.ks_pvalue == pytest.approx(1.0)


def test_small_samples_are_no_data_and_incomparable_inputs_say_why():
    small = drift.DistributionData("numeric", samples=[1.0] * 10)
    big = drift.DistributionData("numeric", samples=[1.0] * 100)
    assert drift.compare(small, big, "psi") is None
    hist = drift.DistributionData("numeric", edges=[0, 1], counts=[100])
    with pytest.raises(drift.DriftError, match="needs raw samples on both sides"):
        drift.compare(hist, big, "ks")
    with pytest.raises(drift.DriftError, match="different bin edges"):
        drift.shares(hist, drift.DistributionData("numeric", edges=[0, 2], counts=[100]))


@pytest.mark.django_db
def test_a_distribution_batch_with_an_error_is_refused_whole_with_exact_messages(catalog):
    items = [
        {"model": "ranker", "timestamp": T0.isoformat(), "samples": [1, 2, 3]},
        {
            "model": "ranker",
            "feature": "price",
            "timestamp": T0.isoformat(),
            "histogram": {"edges": [0, 1, 1], "counts": [1, 2]},
        },
        {"model": "nope", "timestamp": "yesterday", "categories": {"a": -1}},
    ]
    with pytest.raises(DistributionsRejected) as exc:
        distributions_push(items=items, now=hour(1))
    assert str(exc.value) == "2 of 3 distributions are invalid, so nothing was stored"
    messages = {(e.index, e.field): e.message for e in exc.value.errors}
    assert messages[(1, "histogram.edges")] == "bin edges must increase strictly"
    assert messages[(2, "model")] == "required: the slug of a model in the catalog"
    assert messages[(2, "timestamp")].startswith("expected an RFC 3339 date-time")
    assert Distribution.objects.count() == 0


@pytest.mark.django_db
def test_a_feature_drift_rule_fires_on_psi_against_the_pushed_reference(catalog):
    refs = {"model": "ranker", "version": "2.1.0", "environment": "prod"}
    edges = [0, 10, 20]
    distributions_push(
        items=[
            {
                **refs,
                "feature": "basket",
                "timestamp": T0.isoformat(),
                "reference": True,
                "histogram": {"edges": edges, "counts": [500, 500]},
            },
            {
                **refs,
                "feature": "basket",
                "timestamp": hour(1).isoformat(),
                "histogram": {"edges": edges, "counts": [250, 750]},
            },
            {**refs, "feature": "store", "timestamp": hour(1).isoformat(), "categories": {"a": 10, "b": 10}},
            {
                **refs,
                "feature": "store",
                "timestamp": T0.isoformat(),
                "reference": True,
                "categories": {"a": 10, "b": 10},
            },
        ],
        now=hour(2),
    )
    rule = RuleFactory(
        metric="feature_drift",
        model=catalog.model,
        drift_reference="pushed",
        threshold=Decimal("0.2"),
        window_minutes=60,
        consecutive_breaches=1,
    )
    evaluation_cycle(at=hour(1) + timedelta(minutes=30))
    # basket: PSI 0.2747 > 0.2 fires; store: 20 observations are fewer than the 30 needed, so no data (kept ok).
    [alert] = Alert.objects.filter(rule=rule)
    assert alert.labels == {"model": "ranker", "version": "2.1.0", "environment": "prod", "feature": "basket"}
    assert alert.value == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(0.5 / 0.75))
