"""Reads: cost of creating functionality and the four DORA metrics, per scope (team, service) and period.

Definitions (KPIS.md section 3, ADOPTION.md sections 6 and 7):

- **Features shipped**: features whose first production deployment (see services.features_refresh_shipping)
  falls in the period.
- **Labour cost**: the effort of the features shipped in the period, in hours, times their team's loaded
  hourly rate. A feature's whole effort counts in the period it ships; unshipped work counts nowhere yet.
- **Non-production cloud cost**: billing allocated to the scope's services in dev, test, uat and sandbox
  environments (apps.billing.selectors.cloud_cost). When billing has no data at all for a period the cost
  is unknown (None) and cost per feature is labour only.
- **Cost per feature** = (labour + non-production cost) / features shipped.
- **Deployment frequency**: successful production deployments per day over the period's elapsed days.
- **Lead time for changes**: median of (first successful production deployment - commit time) over the
  changes whose first such deployment falls in the period; values <= 0 are ignored (as Four Keys does).
- **Change failure rate**: production deployments that failed or caused at least one incident, over all
  finished production deployments, counted in the period of the deployment.
- **Time to restore service**: median of (resolved - started) over incidents resolved in the period.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from apps.catalog.models import Service, Team
from apps.core.periods import Period

from .models import Deployment, DeploymentChange, DoraBenchmark, DoraMetric, DoraTierThreshold, Feature, Incident

NON_PROD_KINDS = frozenset({"dev", "test", "uat", "sandbox"})
TREND_PERIODS = 12
HOUR = Decimal(3600)


@dataclass(frozen=True)
class DeliveryScope:
    """What a figure covers: every team and service, one team, one service, or both."""

    team: str | None = None  # Team.slug: features by the team; deployments, incidents and cost of its services
    service: str | None = None  # Service.slug

    def feature_q(self, prefix: str = "") -> Q:
        q = Q()
        if self.team:
            q &= Q(**{f"{prefix}team__slug": self.team})
        if self.service:
            q &= Q(**{f"{prefix}service__slug": self.service})
        return q

    def service_q(self, prefix: str = "") -> Q:
        """For rows that belong to a service (deployments, incidents): the team is the service's owner."""
        q = Q()
        if self.team:
            q &= Q(**{f"{prefix}service__team__slug": self.team})
        if self.service:
            q &= Q(**{f"{prefix}service__slug": self.service})
        return q

    def with_team(self, team: str) -> "DeliveryScope":
        return DeliveryScope(team=team, service=self.service)

    @property
    def label(self) -> str:
        parts = [p for p in (self.team and f"team {self.team}", self.service and f"service {self.service}") if p]
        return ", ".join(parts) or "all teams and services"


def trailing_periods(period: Period, count: int = TREND_PERIODS) -> list[Period]:
    """``count`` consecutive periods of the same kind ending with ``period``, oldest first."""
    periods = [period]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


def _in(field_name: str, period: Period) -> Q:
    return Q(**{f"{field_name}__gte": period.start_dt, f"{field_name}__lt": period.end_dt})


def _span(periods: Sequence[Period]) -> tuple[datetime, datetime]:
    return min(p.start_dt for p in periods), max(p.end_dt for p in periods)


def _bucket(periods: Sequence[Period], when: datetime) -> int | None:
    for i, p in enumerate(periods):
        if p.start_dt <= when < p.end_dt:
            return i
    return None


def _median(values: Sequence[int]) -> Decimal | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return Decimal(ordered[mid - 1] + ordered[mid]) / 2


# --- Cost of creating functionality -------------------------------------------------------------------


@dataclass
class CostPoint:
    period: Period
    features: int = 0
    effort_hours: Decimal = Decimal("0")
    labour: Decimal = Decimal("0")
    environments: Decimal | None = None  # None: billing has no data for the period

    @property
    def total(self) -> Decimal:
        return self.labour + (self.environments or Decimal("0"))

    @property
    def environments_missing(self) -> bool:
        return self.environments is None

    def _per_feature(self, amount: Decimal | None) -> Decimal | None:
        if not self.features or amount is None:
            return None
        return amount / self.features

    @property
    def cost_per_feature(self) -> Decimal | None:
        return self._per_feature(self.total)

    @property
    def labour_per_feature(self) -> Decimal | None:
        return self._per_feature(self.labour)

    @property
    def environments_per_feature(self) -> Decimal | None:
        return self._per_feature(self.environments)


@dataclass
class CostSeries:
    scope: DeliveryScope
    points: list[CostPoint]
    teams: dict[str, list[CostPoint]] = field(default_factory=dict)  # team name -> points (when asked for)

    @property
    def current(self) -> CostPoint:
        return self.points[-1]

    @property
    def previous(self) -> CostPoint | None:
        return self.points[-2] if len(self.points) > 1 else None


def _non_prod_costs(
    periods: Sequence[Period], scope: DeliveryScope, service_slugs: list[str], *, by_team: bool = False
) -> dict[int | None, list[Decimal]]:
    """Non-production cloud cost of the scope for each period (and each team), one grouped billing query."""
    from apps.billing.selectors import cloud_cost_by_period

    return cloud_cost_by_period(
        periods=periods,
        environment_kinds=set(NON_PROD_KINDS),
        service_slugs=[scope.service] if scope.service else service_slugs,
        team_slug=scope.team,
        by_team=by_team,
    )


def cost_series(periods: Sequence[Period], scope: DeliveryScope, *, by_team: bool = False) -> CostSeries:
    """Cost of creating functionality for each period, for the scope and, if asked, for each of its teams.

    Labour and features shipped come from one grouped query; non-production cost from one grouped billing
    query over all the periods (by team when ``by_team``: the scope's cost is then the sum of its teams'),
    and whether billing has data in each period from one query of index probes.
    """
    from apps.billing.selectors import has_cost_data_in

    start, end = _span(periods)
    aggregates = {}
    for i, p in enumerate(periods):
        aggregates[f"n{i}"] = Count("pk", filter=_in("shipped_at", p))
        aggregates[f"h{i}"] = Sum("effort_hours", filter=_in("shipped_at", p))
    rows = (
        Feature.objects.filter(scope.feature_q(), shipped_at__gte=start, shipped_at__lt=end)
        .values("team_id")
        .annotate(**aggregates)
        .order_by()
    )
    by_team_rows = {row["team_id"]: row for row in rows}
    teams = Team.objects.filter(slug=scope.team) if scope.team else Team.objects.all()
    teams = list(teams.order_by("name") if by_team else teams.filter(pk__in=by_team_rows))

    covered = has_cost_data_in(periods)
    service_slugs = list(Service.objects.values_list("slug", flat=True)) if not scope.service else []

    def points_for(team_rows: list[dict], team_list: list[Team]) -> list[CostPoint]:
        rates = {t.pk: t.hourly_rate for t in team_list}
        points = []
        for i, p in enumerate(periods):
            point = CostPoint(p)
            for row in team_rows:
                hours = row[f"h{i}"] or Decimal("0")
                point.features += row[f"n{i}"]
                point.effort_hours += hours
                point.labour += hours * rates[row["team_id"]]
            points.append(point)
        return points

    series = CostSeries(scope, points_for(list(by_team_rows.values()), teams))
    zeros = [Decimal("0")] * len(periods)
    if by_team:
        costs = _non_prod_costs(periods, scope, service_slugs, by_team=True) if any(covered) else {}
        for team in teams:
            team_points = points_for([by_team_rows[team.pk]] if team.pk in by_team_rows else [], [team])
            for i, point in enumerate(team_points):
                if covered[i]:
                    point.environments = costs.get(team.pk, zeros)[i]
            series.teams[team.name] = team_points
        for i, point in enumerate(series.points):
            if covered[i]:
                point.environments = sum(
                    (team_points[i].environments for team_points in series.teams.values()), Decimal("0")
                )
    else:
        costs = _non_prod_costs(periods, scope, service_slugs)[None] if any(covered) else zeros
        for i, point in enumerate(series.points):
            if covered[i]:
                point.environments = costs[i]
    return series


@dataclass
class FeatureCost:
    feature: Feature
    labour: Decimal
    environments: Decimal | None  # the feature's share of its team's non-production cost in the period

    @property
    def total(self) -> Decimal:
        return self.labour + (self.environments or Decimal("0"))


def features_shipped(period: Period, scope: DeliveryScope) -> QuerySet[Feature]:
    return (
        Feature.objects.filter(scope.feature_q(), _in("shipped_at", period))
        .select_related("service", "team", "first_deployment")
        .order_by("-shipped_at", "title")
    )


def feature_costs(features: Sequence[Feature], series: CostSeries) -> list[FeatureCost]:
    """Each feature's labour, plus an even share of its team's non-production cost in the period.

    ``series`` must be by team; a team's environment cost is split over the features it shipped.
    """
    rows = []
    for feature in features:
        point = series.teams[feature.team.name][-1]
        share = point.environments / point.features if point.environments is not None and point.features else None
        rows.append(FeatureCost(feature, feature.effort_hours * feature.team.hourly_rate, share))
    return rows


# --- DORA four keys -----------------------------------------------------------------------------------


@dataclass
class DoraPoint:
    period: Period
    days: int
    deployments: int = 0  # successful production deployments
    failed_deployments: int = 0
    deployments_with_incident: int = 0  # successful ones linked to at least one incident
    lead_times: list[int] = field(default_factory=list)  # seconds, per change
    restore_times: list[int] = field(default_factory=list)  # seconds, per incident resolved
    open_incidents: int = 0  # open at the end of the period

    @property
    def deployments_per_day(self) -> Decimal | None:
        return Decimal(self.deployments) / self.days if self.days else None

    @property
    def deployments_per_week(self) -> Decimal | None:
        return Decimal(self.deployments * 7) / self.days if self.days else None

    @property
    def lead_time_hours(self) -> Decimal | None:
        median = _median(self.lead_times)
        return median / HOUR if median is not None else None

    @property
    def change_failures(self) -> int:
        return self.failed_deployments + self.deployments_with_incident

    @property
    def change_failure_rate(self) -> Decimal | None:
        """Percent of finished production deployments that failed or caused an incident."""
        attempts = self.deployments + self.failed_deployments
        return Decimal(100) * self.change_failures / attempts if attempts else None

    @property
    def time_to_restore_hours(self) -> Decimal | None:
        median = _median(self.restore_times)
        return median / HOUR if median is not None else None

    def value(self, metric: str) -> Decimal | None:
        return {
            DoraMetric.DEPLOYMENT_FREQUENCY: self.deployments_per_day,
            DoraMetric.LEAD_TIME: self.lead_time_hours,
            DoraMetric.CHANGE_FAILURE_RATE: self.change_failure_rate,
            DoraMetric.TIME_TO_RESTORE: self.time_to_restore_hours,
        }[metric]


def _elapsed_days(period: Period, today: date) -> int:
    return max(0, (min(period.end, today + timedelta(days=1)) - period.start).days)


def dora_series(periods: Sequence[Period], scope: DeliveryScope, *, today: date | None = None) -> list[DoraPoint]:
    today = today or timezone.localdate()
    start, end = _span(periods)
    points = [DoraPoint(p, _elapsed_days(p, today)) for p in periods]

    aggregates = {}
    success, failure = Q(status=Deployment.Status.SUCCESS), Q(status=Deployment.Status.FAILURE)
    for i, p in enumerate(periods):
        aggregates[f"s{i}"] = Count("pk", filter=success & _in("deployed_at", p))
        aggregates[f"f{i}"] = Count("pk", filter=failure & _in("deployed_at", p))
        aggregates[f"x{i}"] = Count("pk", filter=success & Q(has_incident=True) & _in("deployed_at", p))
    counts = (
        Deployment.objects.production()
        .filter(scope.service_q(), deployed_at__gte=start, deployed_at__lt=end)
        .annotate(has_incident=Exists(Incident.objects.filter(deployment=OuterRef("pk"))))
        .aggregate(**aggregates)
    )
    for i, point in enumerate(points):
        point.deployments, point.failed_deployments = counts[f"s{i}"], counts[f"f{i}"]
        point.deployments_with_incident = counts[f"x{i}"]

    first_live = (
        DeploymentChange.objects.filter(
            scope.service_q("deployment__"),
            deployment__status=Deployment.Status.SUCCESS,
            deployment__environment__kind="prod",
            change__committed_at__isnull=False,
        )
        .values("change_id", "change__committed_at")
        .annotate(live_at=Min("deployment__deployed_at"))
        .filter(live_at__gte=start, live_at__lt=end)
        .order_by()
    )
    for row in first_live:
        seconds = int((row["live_at"] - row["change__committed_at"]).total_seconds())
        i = _bucket(periods, row["live_at"])
        if seconds > 0 and i is not None:
            points[i].lead_times.append(seconds)

    resolved = Incident.objects.filter(scope.service_q(), resolved_at__gte=start, resolved_at__lt=end)
    for started_at, resolved_at in resolved.values_list("started_at", "resolved_at"):
        i = _bucket(periods, resolved_at)
        if i is not None:
            points[i].restore_times.append(int((resolved_at - started_at).total_seconds()))

    open_at_end = {
        f"o{i}": Count(
            "pk", filter=Q(started_at__lt=p.end_dt) & (Q(resolved_at__isnull=True) | Q(resolved_at__gte=p.end_dt))
        )
        for i, p in enumerate(periods)
    }
    opened = Incident.objects.filter(scope.service_q(), started_at__lt=end).aggregate(**open_at_end)
    for i, point in enumerate(points):
        point.open_incidents = opened[f"o{i}"]
    return points


# --- Tiers --------------------------------------------------------------------------------------------


@dataclass
class Benchmark:
    source_year: int
    source: str
    url: str
    note: str
    thresholds: dict[str, list[DoraTierThreshold]]

    def tier(self, metric: str, value: Decimal | None) -> DoraTierThreshold | None:
        """The best tier whose bound the value meets (at least the bound for deployment frequency, at most
        for the others); the lowest tier when it meets none."""
        tiers = self.thresholds.get(metric) or []
        if value is None or not tiers:
            return None
        meets: Callable[[Decimal], bool] = (
            (lambda bound: value >= bound) if metric == DoraMetric.DEPLOYMENT_FREQUENCY else (lambda b: value <= b)
        )
        for threshold in tiers:
            if threshold.bound is None or meets(threshold.bound):
                return threshold
        return tiers[-1]


def dora_benchmark() -> Benchmark | None:
    benchmark = DoraBenchmark.objects.order_by("-active", "-source_year").prefetch_related("thresholds").first()
    if benchmark is None:
        return None
    thresholds: dict[str, list[DoraTierThreshold]] = defaultdict(list)
    for threshold in sorted(benchmark.thresholds.all(), key=lambda t: t.rank):
        thresholds[threshold.metric].append(threshold)
    return Benchmark(benchmark.source_year, benchmark.source, benchmark.url, benchmark.note, dict(thresholds))


# --- Lists for the pages and the API ------------------------------------------------------------------


def has_delivery_data() -> bool:
    return Feature.objects.exists() or Deployment.objects.exists()


def production_deployments(period: Period, scope: DeliveryScope) -> QuerySet[Deployment]:
    return (
        Deployment.objects.production()
        .filter(scope.service_q(), _in("deployed_at", period))
        .select_related("service", "environment", "source")
        .annotate(change_count=Count("changes", distinct=True), incident_count=Count("incidents", distinct=True))
        .order_by("-deployed_at")
    )


def incidents_in(period: Period, scope: DeliveryScope) -> QuerySet[Incident]:
    """Incidents that started or were resolved in the period, or were open during it."""
    return (
        Incident.objects.filter(scope.service_q(), started_at__lt=period.end_dt)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=period.start_dt))
        .select_related("service", "deployment", "deployment__source")
        .order_by("-started_at")
    )


def team_choices() -> QuerySet[Team]:
    return Team.objects.order_by("name")


def service_choices() -> QuerySet[Service]:
    return Service.objects.order_by("name")


DORA_UNITS = {
    DoraMetric.DEPLOYMENT_FREQUENCY: "deployments per day",
    DoraMetric.LEAD_TIME: "hours (median)",
    DoraMetric.CHANGE_FAILURE_RATE: "percent",
    DoraMetric.TIME_TO_RESTORE: "hours (median)",
}


def delivery_metrics(period: Period, scope: DeliveryScope) -> dict:
    """Cost of creating functionality and the DORA metrics of one period, for the API."""
    cost = cost_series([period], scope).current
    dora = dora_series([period], scope)[0]
    benchmark = dora_benchmark()
    sizes = {
        DoraMetric.DEPLOYMENT_FREQUENCY: dora.deployments,
        DoraMetric.LEAD_TIME: len(dora.lead_times),
        DoraMetric.CHANGE_FAILURE_RATE: dora.deployments + dora.failed_deployments,
        DoraMetric.TIME_TO_RESTORE: len(dora.restore_times),
    }
    metrics = {}
    for metric in DoraMetric.values:
        value = dora.value(metric)
        tier = benchmark.tier(metric, value) if benchmark else None
        metrics[metric] = {
            "value": value,
            "unit": DORA_UNITS[metric],
            "tier": tier.tier if tier else None,
            "tier_label": tier.label if tier else None,
            "n": sizes[metric],
        }
    return {
        "period": period.key,
        "scope": {"team": scope.team, "service": scope.service},
        "cost": {
            "features_shipped": cost.features,
            "effort_hours": cost.effort_hours,
            "labour": cost.labour,
            "non_production_environments": cost.environments,
            "cost_per_feature": cost.cost_per_feature,
        },
        "dora": metrics,
        "benchmark": {"source_year": benchmark.source_year, "source": benchmark.source} if benchmark else None,
    }
