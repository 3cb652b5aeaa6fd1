"""Allocation and daily rollups, refreshed for the (source, billing period) pairs an import touched.

Allocation runs in the database: the enabled rules, in order, each claim the still-unallocated line
items they match (first match wins). Where a rule sets no environment or location, the tags ``env`` /
``environment`` and ``location`` / ``store`` name them. Shared cost is then spread over the services
that have direct cost in the same source and billing period (see ``KPIS.md`` section 1).
"""

from collections import defaultdict
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Case, Count, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, TruncDate

from apps.catalog.models import Environment, Location, Service

from . import partitions
from .models import AllocationRule, BillingLineItem, CostRollup

REWRITE_SHARE = 0.1  # allocate_written rewrites an import's table when rules claim more of its rows than this
SCALE = Decimal("1e-18")  # the stored precision of money
ENV_TAGS = ("env", "environment")
LOCATION_TAGS = ("location", "store")


def rule_q(rule: AllocationRule) -> Q:
    match rule.match:
        case AllocationRule.Match.TAG:
            return Q(**{f"tags__{rule.tag_key}": rule.value})
        case AllocationRule.Match.SUB_ACCOUNT:
            return Q(sub_account_id=rule.value)
        case AllocationRule.Match.RESOURCE:
            return Q(resource_id__regex=rule.value) | Q(resource_name__regex=rule.value)
        case AllocationRule.Match.SERVICE_NAME:
            return Q(service_name__iexact=rule.value)
    raise ValueError(f"unknown match {rule.match!r}")


_TOUCHED = (  # rows an earlier allocation set something on
    Q(service__isnull=False)
    | Q(environment__isnull=False)
    | Q(location__isnull=False)
    | Q(allocation_rule__isnull=False)
    | Q(is_shared=True)
)


def _reset(items: QuerySet[BillingLineItem]) -> None:
    """Clear what an earlier allocation set, on the rows it touched."""
    items.filter(_TOUCHED).update(service=None, environment=None, location=None, allocation_rule=None, is_shared=False)


def _env_tag_q(env: Environment) -> Q:
    by_tag = Q()
    for tag in ENV_TAGS:
        by_tag |= Q(**{f"tags__{tag}": env.slug}) | Q(**{f"tags__{tag}": env.name})
    return by_tag


def _first(cases: list[tuple[Q, object]], output_field) -> Cast:
    """The value of the first condition a row meets (null if none): a rule's, in the rules' order. Cast, so
    that a CASE of nulls only still has the column's type (PostgreSQL would take it for text)."""
    case = Case(*(When(q, then=Value(value)) for q, value in cases), default=Value(None), output_field=output_field)
    return Cast(case, output_field)


def _claims() -> tuple[Q, dict[str, Any]] | None:
    """What the rules (in order, the first match wins) and the environment tags (where the rule names no
    environment) give a line item: the rows they claim, and the allocation columns as expressions; None
    when there is nothing to apply."""
    rules = [(rule_q(rule), rule) for rule in AllocationRule.objects.filter(enabled=True).order_by("order", "pk")]
    envs = [(_env_tag_q(env), env.pk) for env in Environment.objects.all()]
    if not rules and not envs:
        return None
    claimed = Q()
    for q, _ in [*rules, *envs]:
        claimed |= q
    key = models.BigIntegerField()
    return claimed, {
        "allocation_rule": _first([(q, rule.pk) for q, rule in rules], key),
        "service": _first([(q, None if rule.shared else rule.service_id) for q, rule in rules], key),
        "environment": Coalesce(_first([(q, rule.environment_id) for q, rule in rules], key), _first(envs, key)),
        "location": _first([(q, rule.location_id) for q, rule in rules], key),
        "is_shared": Coalesce(_first([(q, rule.shared) for q, rule in rules], models.BooleanField()), Value(False)),
    }


def allocate_written(import_id: int) -> bool:
    """Allocate an import's rows while they are still its own table (PostgreSQL, before the table is indexed
    and attached): when the rules and environment tags claim more than REWRITE_SHARE of the rows (judged on
    a sample of the table's pages), the table is written again with them applied: one bulk INSERT into a
    fresh table, each rule's condition tested once per row, no row updated in place and no index
    maintained row by row (updating 700,000 of a million rows in place took 13.6 s). Returns whether it did;
    otherwise ``refresh_periods`` allocates as usual."""
    if not partitions.partitioned():
        return False
    rules = list(AllocationRule.objects.filter(enabled=True).order_by("order", "pk"))
    envs = list(Environment.objects.all())
    if not rules and not envs:
        return False
    parent, table = BillingLineItem._meta.db_table, partitions.name(import_id)
    small = models.SmallIntegerField()
    # Which rule and which environment tag each row meets first (null: none), as SQL on the model's table.
    numbered = BillingLineItem.objects.annotate(
        allocation_rule_n=Case(*(When(rule_q(r), then=Value(n)) for n, r in enumerate(rules)), output_field=small),
        environment_n=Case(*(When(_env_tag_q(e), then=Value(n)) for n, e in enumerate(envs)), output_field=small),
    )
    columns = partitions.columns()
    fields = {f.column: f.attname for f in BillingLineItem._meta.concrete_fields}
    sql, params = numbered.values(
        *(fields[c] for c in columns), "allocation_rule_n", "environment_n"
    ).query.sql_with_params()
    read_from = f'FROM "{parent}"'
    if sql.count(read_from) != 1:
        raise RuntimeError(f"unexpected SQL for the line items: {sql[:200]}")

    def counted(sample: str) -> tuple[int, int]:
        source = sql.replace(read_from, f'FROM "{table}" AS "{parent}" {sample}')
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE allocation_rule_n IS NOT NULL OR environment_n IS NOT NULL) "
                f"FROM ({source}) s",
                params,
            )
            return cursor.fetchone()

    rows, hits = counted("TABLESAMPLE SYSTEM (1) REPEATABLE (0)")  # a hundredth of the table's pages
    if rows < 1000:  # a small table: every row
        rows, hits = counted("")
    if not hits or hits <= rows * REWRITE_SHARE:
        return False

    def by_rule(value) -> str:
        whens = " ".join(f"WHEN {n} THEN {_literal(value(r))}" for n, r in enumerate(rules))
        return f"(CASE s.allocation_rule_n {whens} END)" if whens else "NULL"

    envs_sql = " ".join(f"WHEN {n} THEN {e.pk}" for n, e in enumerate(envs))
    computed = {
        "allocation_rule_id": f"{by_rule(lambda r: r.pk)}::bigint",
        "service_id": f"{by_rule(lambda r: None if r.shared else r.service_id)}::bigint",
        "environment_id": f"COALESCE({by_rule(lambda r: r.environment_id)}::bigint, "
        + (f"(CASE s.environment_n {envs_sql} END)::bigint)" if envs_sql else "NULL::bigint)"),
        "location_id": f"{by_rule(lambda r: r.location_id)}::bigint",
        "is_shared": f"COALESCE({by_rule(lambda r: r.shared)}::boolean, false)",
    }
    select = ", ".join(computed.get(c, f's."{fields[c]}"') for c in columns)
    whole = sql.replace(read_from, f'FROM "{table}" AS "{parent}"')
    partitions.rewrite(import_id, f"SELECT {select} FROM ({whole}) s", params)
    return True


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(int(value))


def _allocate(
    items: QuerySet[BillingLineItem], *, fresh: bool = False, allocated: bool = False, located: bool = False
) -> None:
    # Only rows an earlier allocation touched need resetting: rewriting fresh rows would cost a full pass.
    # Rows an import has just written (fresh) have none, and finding that out would cost a pass of its own.
    # Rules and environment tags in one UPDATE: a single pass over the rows, each claimed row written once
    # (a pass per rule and per environment took 18 s for a million rows with five rules and three
    # environments). Rows ``allocate_written`` allocated have them already. Re-allocating, the same UPDATE
    # also clears what an earlier allocation set on rows nothing claims now: each row is written once.
    claims = None if allocated else _claims()
    if claims is None:
        if not fresh:
            _reset(items)
    else:
        claimed, columns = claims
        items.filter(claimed if fresh else claimed | _TOUCHED).update(**columns)
    if located or not Location.objects.exists():
        return
    for tag in LOCATION_TAGS:
        codes = set(
            items.filter(location__isnull=True, **{f"tags__{tag}__isnull": False})
            .values_list(f"tags__{tag}", flat=True)
            .distinct()
        )
        for location in Location.objects.filter(code__in={str(c) for c in codes}):
            items.filter(location__isnull=True, **{f"tags__{tag}": location.code}).update(location=location)


@contextmanager
def _grouping_by_hash():
    """Group by hashing on PostgreSQL. Line items an import has just written have no statistics yet: the
    planner expects a handful and would sort a million rows on disk to group them (2.5 times slower at a
    million). Hashing is right at every size: it spills to disk beyond work_mem. Without JIT: compiling
    the aggregation costs more than it saves (2.1 s of compiling for a million rows grouped in 1 s)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL jit = off")
        try:
            yield
        finally:
            cursor.execute("SET LOCAL enable_sort TO DEFAULT")
            cursor.execute("SET LOCAL jit TO DEFAULT")


def _spread_weights(rule: AllocationRule, direct: dict[int, Decimal], services: dict[str, int]) -> dict[int, Decimal]:
    match rule.spread:
        case AllocationRule.Spread.WEIGHTS:
            return {services[slug]: Decimal(str(w)) for slug, w in rule.weights.items() if slug in services and w}
        case AllocationRule.Spread.EVEN:
            return {service_id: Decimal(1) for service_id in direct}
    return {service_id: cost for service_id, cost in direct.items() if cost > 0}


def _split(amount: Decimal, weights: dict[int, Decimal]) -> dict[int, Decimal]:
    """Split exactly: shares are rounded to the stored precision and the remainder goes to the largest."""
    total = sum(weights.values())
    parts = {k: (amount * w / total).quantize(SCALE) for k, w in weights.items()}
    largest = max(weights, key=lambda k: (weights[k], -k))
    parts[largest] += amount - sum(parts.values())
    return parts


_GROUP_BY = (
    "day",
    "service_id",
    "environment_id",
    "location_id",
    "provider_name",
    "sub_account_id",
    "region_id",
    "charge_category",
    "is_shared",
    "allocation_rule_id",
    "billing_currency",
)


def _groups(source_id: int, period_starts: list[datetime], table: str | None) -> dict[datetime, list[dict]]:
    """The line items of these periods summed per rollup key, by period: one aggregation for them all.

    ``table``: the periods' rows are all in this table (an import's partition, PostgreSQL), which is then
    read whole, by a (parallel) sequential scan, rather than through the index of the line items."""
    items = BillingLineItem.objects.all()
    if table is None:
        items = items.filter(source_id=source_id, billing_period_start__in=period_starts)
    # else every row of the table: a filter the planner cannot estimate would keep it from scanning in parallel
    grouped = (
        items.annotate(day=TruncDate("charge_period_start"))
        .values("billing_period_start", *_GROUP_BY)
        .annotate(billed=Sum("billed_cost"), effective=Sum("effective_cost"), n=Count("pk"))
        .order_by()
    )
    by_period: dict[datetime, list[dict]] = defaultdict(list)
    with _grouping_by_hash():
        if table is None:
            rows = list(grouped)
        else:
            sql, params = grouped.query.sql_with_params()
            parent = BillingLineItem._meta.db_table
            read_from = f'FROM "{parent}"'
            if sql.count(read_from) != 1:
                raise RuntimeError(f"unexpected SQL for the line items: {sql[:200]}")
            with connection.cursor() as cursor:
                cursor.execute(sql.replace(read_from, f'FROM "{table}" AS "{parent}"'), params)
                names = ["billing_period_start", *_GROUP_BY, "billed", "effective", "n"]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        by_period[row.pop("billing_period_start")].append(row)
    return by_period


def _rebuild(source_id: int, period_start: datetime, groups: list[dict]) -> None:
    period_day: date = period_start.date()
    rollups: list[CostRollup] = []
    shared: list[dict] = []
    direct: dict[int, Decimal] = defaultdict(Decimal)
    for g in groups:
        if g["is_shared"]:
            shared.append(g)
            continue
        if g["service_id"] is not None:
            direct[g["service_id"]] += g["effective"]
        rollups.append(_rollup(source_id, period_day, g, g["service_id"], g["billed"], g["effective"], False))
    if shared:
        rules = AllocationRule.objects.in_bulk({g["allocation_rule_id"] for g in shared})
        services = dict(Service.objects.values_list("slug", "pk"))
        for g in shared:
            weights = _spread_weights(rules[g["allocation_rule_id"]], direct, services)
            if not weights:  # nobody to spread over: it stays visible as unallocated
                rollups.append(_rollup(source_id, period_day, g, None, g["billed"], g["effective"], False))
                continue
            billed, effective = _split(g["billed"], weights), _split(g["effective"], weights)
            rollups += [_rollup(source_id, period_day, g, sid, billed[sid], effective[sid], True) for sid in weights]
    CostRollup.objects.bulk_create(rollups, batch_size=1000)


def _rollup(source_id, period_day, g, service_id, billed, effective, is_shared) -> CostRollup:
    return CostRollup(
        day=g["day"],
        source_id=source_id,
        billing_period_start=period_day,
        service_id=service_id,
        environment_id=g["environment_id"],
        location_id=g["location_id"],
        provider=g["provider_name"] or "",
        sub_account_id=g["sub_account_id"] or "",
        region=g["region_id"] or "",
        charge_category=g["charge_category"] or "",
        is_shared=is_shared,
        currency=g["billing_currency"],
        billed_cost=billed,
        effective_cost=effective,
        line_items=g["n"],
    )


def refresh_periods(
    *,
    source_id: int,
    period_starts: list[datetime],
    fresh: bool = False,
    allocated: bool = False,
    located: bool = False,
    table: str | None = None,
    groups: dict[datetime, list[dict]] | None = None,
) -> None:
    """Re-allocate the line items of these billing periods and rebuild their rollups (caller's transaction).

    ``fresh``: the periods hold only rows an import has just written, which no allocation has touched;
    ``allocated``: the rules and environment tags were applied to them already (``allocate_written`` or as
    the rows were written); ``located``: the location tags too; ``table``: every row of the periods is in
    this table (the import's partition); ``groups``: the rows' sums per rollup key, made as they were read
    (as ``_groups`` reads them), for rows nothing changes after."""
    CostRollup.objects.filter(source_id=source_id, billing_period_start__in=[p.date() for p in period_starts]).delete()
    for period_start in period_starts:
        items = BillingLineItem.objects.filter(source_id=source_id, billing_period_start=period_start)
        _allocate(items, fresh=fresh, allocated=allocated, located=located)
    if groups is None:
        groups = _groups(source_id, period_starts, table)
    for period_start in period_starts:
        _rebuild(source_id, period_start, groups.get(period_start, []))
