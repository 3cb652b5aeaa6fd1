"""What a rule measures at an evaluation time, and how one evaluation moves an instance's state. Reads only.

**Windows.** Telemetry is stored as hourly rollups. A rule's window of W minutes (a whole number of hours) at
time ``t`` covers the hour in progress plus the W/60 whole hours before it: the buckets starting from
``floor_hour(t) - W`` to ``floor_hour(t)``. Every evaluation therefore sees the newest data, and the first
minutes of an hour still have the previous hours behind them (no false "no data" at each hour's start).

**Values per instance** (an instance is one combination of the rule's ``group_by`` labels among the series in
its scope):

- latency p50/p95/p99: the buckets' percentile weighted by their sample counts (percentiles do not add; for a
  one-bucket window it is exact, and the models page averages the same way);
- error rate: failed requests / requests (no requests: no data; no error series: 0 failures);
- throughput: requests / seconds covered by the window;
- accuracy: the mean of the samples; utilisation: sum used / sum provisioned;
- drift: PSI or the K-S p-value between the reference and the window's distributions (``drift.py``);
- a KPI: the headline KPI's value for the month so far (``apps.kpis.registry``), cut by the rule's service,
  environment and location.

A series counts as live while it has a daily rollup in the last ``STALE_DAYS`` days; one with nothing in the
window is "no data" for the rule's no-data setting. When no live series matches the scope at all, the scope
itself is one instance with no data (so "alert on no data" notices a model that stopped reporting).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from django.db.models import Q

from apps.telemetry.metrics import METRICS
from apps.telemetry.models import Rollup, Series

from . import drift
from .models import SCOPE_FIELDS, AlertRule, Distribution, fingerprint

M = AlertRule.Metric
STALE_DAYS = 7
LATENCY_LEVEL = {M.LATENCY_P50: "p50", M.LATENCY_P95: "p95", M.LATENCY_P99: "p99"}
MODEL_METRICS = frozenset({*LATENCY_LEVEL, M.ERROR_RATE, M.THROUGHPUT, M.ACCURACY})
DRIFT_METRICS = frozenset({M.PREDICTION_DRIFT, M.FEATURE_DRIFT})
USED = tuple(name for name in METRICS if name.endswith("_used"))
PROVISIONED = tuple(name for name in METRICS if name.endswith("_provisioned"))
TELEMETRY_SOURCES: dict[str, tuple[str, ...]] = {
    M.LATENCY_P50: ("latency_ms",),
    M.LATENCY_P95: ("latency_ms",),
    M.LATENCY_P99: ("latency_ms",),
    M.ERROR_RATE: ("request_count", "error_count"),
    M.THROUGHPUT: ("request_count",),
    M.ACCURACY: ("accuracy",),
    M.UTILISATION: USED + PROVISIONED,
}
# Scope fields and group-by labels that mean something for each kind of metric.
MODEL_LABELS = SCOPE_FIELDS
POOL_LABELS = ("pool", "environment", "location", "service")
DRIFT_LABELS = ("model", "version", "environment", "service")
KPI_LABELS = ("service", "environment", "location")
DEFAULT_GROUP_BY = ["model", "version", "environment"]


def labels_for(metric: str) -> tuple[str, ...]:
    if metric == M.UTILISATION:
        return POOL_LABELS
    if metric in DRIFT_METRICS:
        return DRIFT_LABELS
    if metric == M.KPI:
        return KPI_LABELS
    return MODEL_LABELS


def default_group_by(metric: str) -> list[str]:
    if metric == M.UTILISATION:
        return ["pool"]
    if metric == M.KPI:
        return []
    return list(DEFAULT_GROUP_BY)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_index(moment: datetime) -> int:
    return int(moment.timestamp()) // 3600


def window_start(at: datetime, window_minutes: int) -> datetime:
    """The start of the oldest bucket of the window at ``at``."""
    return floor_hour(at) - timedelta(minutes=window_minutes)


class EvaluationError(Exception):
    """The rule could not be evaluated (a KPI failed, drift data cannot be compared); kept apart from breaches."""


_FINGERPRINTS: dict[tuple, str] = {}  # the same label sets recur in every cycle and across rules


@dataclass
class Instance:
    """One instance of a rule at one evaluation: its identifying ids, and its value (None: no data)."""

    ids: dict[str, int | str | None]
    value: float | Decimal | None
    detail: str = ""
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        key = tuple(self.ids.items())
        found = _FINGERPRINTS.get(key)
        if found is None:
            found = _FINGERPRINTS[key] = fingerprint(self.ids)
            if len(_FINGERPRINTS) > 200_000:
                _FINGERPRINTS.clear()
        self.fingerprint = found


# Telemetry ---------------------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    count: int
    total: float
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass
class _Agg:
    """One series over one window: sums of its buckets, and each percentile weighted by its bucket's samples."""

    buckets: int = 0
    count: int = 0
    total: float = 0.0
    weighted: dict = field(default_factory=lambda: {"p50": 0.0, "p95": 0.0, "p99": 0.0})
    weights: dict = field(default_factory=lambda: {"p50": 0, "p95": 0, "p99": 0})


class TelemetryFrame:
    """Hourly rollups of some telemetry metrics from ``first`` to ``last`` hour (inclusive), indexed for reads.

    One query for the series and one for the rollups, whatever the number of rules that read them; each series'
    window sums are computed once per window length and shared by every rule that reads them.
    """

    def __init__(self, *, metrics: Iterable[str], first: datetime, last: datetime, live_since: datetime | None):
        self.metrics = tuple(sorted(set(metrics)))
        self.first, self.last = hour_index(first), hour_index(last)
        self.series: dict[int, tuple] = {}  # id -> (metric, model, version, environment, service, pool, location)
        self.index: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.by_metric: dict[str, set[int]] = defaultdict(set)
        rows = Series.objects.filter(metric__in=self.metrics).values_list(
            "pk", "metric", *(f"{f}_id" for f in SCOPE_FIELDS)
        )
        for pk, metric, *dims in rows:
            self.series[pk] = (metric, *dims)
            self.by_metric[metric].add(pk)
            for name, value in zip(SCOPE_FIELDS, dims, strict=True):
                if value is not None:
                    self.index[(name, value)].add(pk)
        self.buckets: dict[int, dict[int, _Bucket]] = defaultdict(dict)
        for sid, start, count, total, p50, p95, p99 in Rollup.objects.filter(
            series__metric__in=self.metrics,
            grain=Rollup.Grain.HOUR,
            bucket_start__gte=first,
            bucket_start__lte=last,
        ).values_list("series_id", "bucket_start", "count", "sum", "p50", "p95", "p99"):
            self.buckets[sid][hour_index(start)] = _Bucket(count, total, p50, p95, p99)
        self.live: set[int] | None = None
        if live_since is not None:
            self.live = set(
                Rollup.objects.filter(
                    series__metric__in=self.metrics,
                    grain=Rollup.Grain.DAY,
                    bucket_start__gte=floor_hour(live_since).replace(hour=0),
                    bucket_start__lte=last,
                )
                .values_list("series_id", flat=True)
                .distinct()
            )
        self._match_cache: dict[tuple, dict[tuple, dict[str, list[int]]]] = {}
        self._agg_cache: dict[tuple[int, int, int], _Agg] = {}
        self._value_cache: dict[tuple, list[tuple[dict, float | None]]] = {}

    def matching(self, scope: dict[str, int], metrics: tuple[str, ...], group_by: tuple[str, ...]):
        """Live series of ``metrics`` within ``scope``, grouped by the ``group_by`` labels:
        {instance key: {metric: [series ids]}}."""
        cache_key = (tuple(sorted(scope.items())), metrics, group_by)
        if cache_key in self._match_cache:
            return self._match_cache[cache_key]
        candidates: set[int] | None = None
        for name, value in scope.items():
            ids = self.index.get((name, value), set())
            candidates = ids if candidates is None else candidates & ids
        wanted = set().union(*(self.by_metric.get(m, set()) for m in metrics))
        candidates = wanted if candidates is None else candidates & wanted
        if self.live is not None:
            candidates &= self.live
        positions = [SCOPE_FIELDS.index(g) + 1 for g in group_by]
        groups: dict[tuple, dict[str, list[int]]] = {}
        for sid in sorted(candidates):
            row = self.series[sid]
            key = tuple(row[p] for p in positions)
            groups.setdefault(key, defaultdict(list))[row[0]].append(sid)
        self._match_cache[cache_key] = groups
        return groups

    def aggregate(self, sid: int, last: int, hours: int) -> _Agg:
        """The series' buckets from hour ``last - hours`` to ``last``, added up."""
        key = (sid, last, hours)
        agg = self._agg_cache.get(key)
        if agg is None:
            agg = self._agg_cache[key] = _Agg()
            series = self.buckets.get(sid) or {}
            for h in range(last - hours, last + 1):
                b = series.get(h)
                if b is None:
                    continue
                agg.buckets += 1
                agg.count += b.count
                agg.total += b.total
                for level in LATENCY_LEVELS:
                    value = getattr(b, level)
                    if value is not None:
                        agg.weighted[level] += value * b.count
                        agg.weights[level] += b.count
        return agg


LATENCY_LEVELS = ("p50", "p95", "p99")


def telemetry_value(
    frame: TelemetryFrame, metric: str, by_metric: dict[str, list[int]], *, last: int, hours: int, seconds: float
) -> float | None:
    """The rule metric's value over the window ending with hour ``last`` for one instance's series."""

    def aggs(names: Iterable[str]) -> list[_Agg]:
        return [frame.aggregate(sid, last, hours) for name in names for sid in by_metric.get(name, ())]

    if metric in LATENCY_LEVEL:
        level = LATENCY_LEVEL[metric]
        found = aggs(["latency_ms"])
        weight = sum(a.weights[level] for a in found)
        return sum(a.weighted[level] for a in found) / weight if weight else None
    if metric == M.ERROR_RATE:
        requests = sum(a.total for a in aggs(["request_count"]))
        if requests <= 0:
            return None
        return sum(a.total for a in aggs(["error_count"])) / requests
    if metric == M.THROUGHPUT:
        found = [a for a in aggs(["request_count"]) if a.buckets]
        return sum(a.total for a in found) / seconds if found else None
    if metric == M.ACCURACY:
        found = aggs(["accuracy"])
        count = sum(a.count for a in found)
        return sum(a.total for a in found) / count if count else None
    if metric == M.UTILISATION:
        provisioned = sum(a.total for a in aggs(PROVISIONED))
        if provisioned <= 0:
            return None
        return sum(a.total for a in aggs(USED)) / provisioned
    raise EvaluationError(f"{metric} is not a telemetry metric")


def _scope_ids(rule: AlertRule) -> dict[str, int]:
    allowed = labels_for(rule.metric)
    return {f: v for f, v in rule.scope_ids().items() if f in allowed}


def _group_by(rule: AlertRule) -> tuple[str, ...]:
    allowed = labels_for(rule.metric)
    chosen = rule.group_by if rule.group_by else default_group_by(rule.metric)
    return tuple(g for g in SCOPE_FIELDS if g in chosen and g in allowed)


def telemetry_instances(
    frame: TelemetryFrame, rule: AlertRule, *, last: int, seconds_into_hour: float
) -> list[Instance]:
    scope, group_by = _scope_ids(rule), _group_by(rule)
    sources = TELEMETRY_SOURCES[rule.metric]
    hours = rule.window_minutes // 60
    seconds = hours * 3600 + seconds_into_hour
    cache_key = (rule.metric, tuple(sorted(scope.items())), group_by, hours, last, seconds)
    values = frame._value_cache.get(cache_key)
    if values is None:
        groups = frame.matching(scope, sources, group_by)
        values = [
            (
                dict(zip(group_by, key, strict=True)),
                telemetry_value(frame, rule.metric, by_metric, last=last, hours=hours, seconds=seconds),
            )
            for key, by_metric in groups.items()
        ]
        frame._value_cache[cache_key] = values
    if not values:
        return [Instance(ids={g: scope.get(g) for g in group_by}, value=None, detail="no live series in scope")]
    return [Instance(ids=ids, value=value) for ids, value in values]


# Drift -------------------------------------------------------------------------------------------------------


class DriftFrame:
    """Distributions pushed for some models between two times, with each rule's windows compared on demand."""

    def __init__(self, *, since: datetime, until: datetime, models: set[int] | None = None):
        qs = Distribution.objects.filter(Q(ts__gte=since, ts__lte=until) | Q(is_reference=True))
        if models is not None:
            qs = qs.filter(model_id__in=models)
        self.rows = list(
            qs.values(
                "model_id",
                "version_id",
                "environment_id",
                "model__service_id",
                "feature",
                "ts",
                "is_reference",
                "kind",
                "samples",
                "edges",
                "counts",
                "categories",
            )
        )
        self._cache: dict[tuple, Instance] = {}

    def instances(self, rule: AlertRule, *, at: datetime) -> list[Instance]:
        scope, group_by = _scope_ids(rule), _group_by(rule)
        start = window_start(at, rule.window_minutes)
        prediction = rule.metric == M.PREDICTION_DRIFT
        by_instance: dict[tuple, list[dict]] = defaultdict(list)
        key_names = (*group_by, "feature")
        for row in self.rows:
            if prediction != (row["feature"] == ""):
                continue
            if not prediction and rule.feature and row["feature"] != rule.feature:
                continue
            dims = {
                "model": row["model_id"],
                "version": row["version_id"],
                "environment": row["environment_id"],
                "service": row["model__service_id"],
            }
            if any(dims[f] != v for f, v in scope.items()):
                continue
            key = (*(dims[g] for g in group_by), row["feature"])
            by_instance[key].append(row)
        if not by_instance:
            ids = {**{g: scope.get(g) for g in group_by}, "feature": rule.feature}
            return [Instance(ids=ids, value=None, detail="no distributions pushed in scope")]
        out = []
        for key, rows in by_instance.items():
            ids = dict(zip(key_names, key, strict=True))
            current = [r for r in rows if not r["is_reference"] and start <= r["ts"] <= at]
            if rule.drift_reference == AlertRule.DriftReference.PUSHED:
                reference = [r for r in rows if r["is_reference"]]
            else:
                ref_start = start - timedelta(days=rule.drift_reference_days)
                reference = [r for r in rows if not r["is_reference"] and ref_start <= r["ts"] < start]
            try:
                result = drift.compare(drift.combine(reference), drift.combine(current), rule.drift_method)
            except drift.DriftError as exc:
                raise EvaluationError(f"feature {ids['feature'] or '(predictions)'}: {exc}") from None
            if result is None:
                out.append(Instance(ids=ids, value=None, detail=f"fewer than {drift.MIN_SAMPLES} observations"))
            else:
                value = result.ks_pvalue if rule.drift_method == AlertRule.DriftMethod.KS else result.psi
                out.append(Instance(ids=ids, value=value, detail=f"n={result.n_reference:g}/{result.n_current:g}"))
        return out


# KPIs --------------------------------------------------------------------------------------------------------


def kpi_definitions() -> dict:
    from apps.kpis.registry import headline_kpis

    return {d.key: d for d in headline_kpis()}


class KpiFrame:
    """Headline KPI values for the month of ``at`` (to date), computed once per distinct cut."""

    def __init__(self, *, at: datetime):
        from apps.core.periods import Period

        today = at.astimezone(UTC).date()
        self.period = Period("custom", today.replace(day=1), today + timedelta(days=1))
        self.definitions = kpi_definitions()
        self._cache: dict[tuple, Decimal | EvaluationError | None] = {}

    def value(self, key: str, cut: dict[str, str | None], period=None) -> Decimal | None:
        from apps.kpis.registry import KpiFilters

        period = period or self.period
        cache_key = (key, tuple(sorted(cut.items())), period.start, period.end)
        if cache_key not in self._cache:
            definition = self.definitions.get(key)
            if definition is None:
                self._cache[cache_key] = EvaluationError(f"there is no headline KPI '{key}'")
            else:
                try:
                    self._cache[cache_key] = definition.compute(period, KpiFilters(**cut)).value
                except Exception as exc:  # a KPI's failure is recorded on the rule, never a crash of the cycle
                    self._cache[cache_key] = EvaluationError(f"KPI {key} failed: {type(exc).__name__}: {exc}")
        result = self._cache[cache_key]
        if isinstance(result, EvaluationError):
            raise result
        return result

    @staticmethod
    def cut(rule: AlertRule) -> dict[str, str | None]:
        return {
            "service": rule.service.slug if rule.service_id else None,
            "environment": rule.environment.slug if rule.environment_id else None,
            "location": rule.location.code if rule.location_id else None,
        }

    def instances(self, rule: AlertRule, period=None) -> list[Instance]:
        ids = {"kpi": rule.kpi_key, **{f: getattr(rule, f"{f}_id") for f in KPI_LABELS if getattr(rule, f"{f}_id")}}
        return [Instance(ids=ids, value=self.value(rule.kpi_key, self.cut(rule), period))]


# One evaluation time, for every rule ------------------------------------------------------------------------


class Snapshot:
    """Everything the rules read at one evaluation time, loaded once per metric family."""

    def __init__(self, *, at: datetime, rules: list[AlertRule]):
        self.at = at
        telemetry = [r for r in rules if r.metric in TELEMETRY_SOURCES]
        self.telemetry: TelemetryFrame | None = None
        if telemetry:
            hours = max(r.window_minutes for r in telemetry) // 60
            self.telemetry = TelemetryFrame(
                metrics={m for r in telemetry for m in TELEMETRY_SOURCES[r.metric]},
                first=floor_hour(at) - timedelta(hours=hours),
                last=floor_hour(at),
                live_since=at - timedelta(days=STALE_DAYS),
            )
        drift_rules = [r for r in rules if r.metric in DRIFT_METRICS]
        self.drift: DriftFrame | None = None
        if drift_rules:
            reach = max(
                timedelta(minutes=r.window_minutes) + timedelta(days=r.drift_reference_days) for r in drift_rules
            )
            self.drift = DriftFrame(since=floor_hour(at) - reach, until=at)
        self.kpis = KpiFrame(at=at) if any(r.metric == M.KPI for r in rules) else None

    def instances(self, rule: AlertRule) -> list[Instance]:
        if rule.metric in TELEMETRY_SOURCES:
            seconds = (self.at - floor_hour(self.at)).total_seconds()
            return telemetry_instances(self.telemetry, rule, last=hour_index(self.at), seconds_into_hour=seconds)
        if rule.metric in DRIFT_METRICS:
            return self.drift.instances(rule, at=self.at)
        if rule.metric == M.KPI:
            return self.kpis.instances(rule)
        raise EvaluationError(f"unknown metric {rule.metric!r}")


# Comparison and the state machine ---------------------------------------------------------------------------


class Outcome(StrEnum):
    BREACH = "breach"  # on the wrong side of the threshold (or no data, when no data means alert)
    HOLD = "hold"  # not breaching, but not past the recovery threshold either
    RECOVER = "recover"  # past the recovery threshold (or the threshold, without one)
    KEEP = "keep"  # no data, and no data keeps the last state


def breaches(value, comparison: str, threshold) -> bool:
    match comparison:
        case AlertRule.Comparison.GT:
            return value > threshold
        case AlertRule.Comparison.GTE:
            return value >= threshold
        case AlertRule.Comparison.LT:
            return value < threshold
        case AlertRule.Comparison.LTE:
            return value <= threshold
    raise ValueError(f"unknown comparison {comparison!r}")


def outcome(rule: AlertRule, value) -> Outcome:
    if value is None:
        return {
            AlertRule.NoData.OK: Outcome.RECOVER,
            AlertRule.NoData.KEEP: Outcome.KEEP,
            AlertRule.NoData.ALERT: Outcome.BREACH,
        }[rule.no_data]
    if isinstance(value, float):
        threshold = float(rule.threshold)
        recovery = float(rule.recovery_threshold) if rule.recovery_threshold is not None else None
    else:
        threshold, recovery = rule.threshold, rule.recovery_threshold
    if breaches(value, rule.comparison, threshold):
        return Outcome.BREACH
    if recovery is None:
        return Outcome.RECOVER
    upward = rule.comparison in (AlertRule.Comparison.GT, AlertRule.Comparison.GTE)
    recovered = value < recovery if upward else value > recovery
    return Outcome.RECOVER if recovered else Outcome.HOLD


@dataclass(frozen=True)
class Step:
    """The state of an instance after some evaluations with the same outcome."""

    state: str | None  # None (ok), "pending", "firing"
    breaches: int
    opened_after: int | None = None  # the evaluation (1-based) at which it went pending
    fired_after: int | None = None  # ... went firing
    resolved_after: int | None = None  # ... resolved (or cleared while pending)


def advance(state: str | None, breaches_so_far: int, result: Outcome, required: int, times: int = 1) -> Step:
    """Apply ``times`` evaluations with the same outcome to an instance in ``state``.

    ok + breach -> pending (firing at once when one breach is enough); pending + breach -> firing at the
    ``required``-th breach in a row; pending + anything else -> cleared (back to ok, as Prometheus does);
    firing + recover -> resolved; firing + hold -> stays firing; keep -> nothing changes.
    """
    if result == Outcome.KEEP or times <= 0:
        return Step(state, breaches_so_far)
    if result == Outcome.BREACH:
        total = breaches_so_far + times
        opened = 1 if state is None else None
        if state == "firing":
            return Step("firing", total)
        if total >= required:
            return Step("firing", total, opened_after=opened, fired_after=max(1, required - breaches_so_far))
        return Step("pending", total, opened_after=opened)
    if state == "pending" or (state == "firing" and result == Outcome.RECOVER):
        return Step(None, 0, resolved_after=1)
    return Step(state, breaches_so_far if state else 0)


def value_label(metric: str, value) -> str:
    """A value as people read it: 612 ms, 4.20 %, 35.1 /s, 0.231."""
    if value is None:
        return "no data"
    value = float(value)
    if metric in LATENCY_LEVEL:
        return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"
    if metric in (M.ERROR_RATE, M.UTILISATION):
        return f"{value * 100:.2f} %"
    if metric == M.THROUGHPUT:
        return f"{value:,.2f} /s"
    return f"{value:,.4g}"


def as_date(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
