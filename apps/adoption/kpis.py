"""Headline KPIs of the adoption area: monthly active users and NPS.

The adoption overview builds its tiles with the same :func:`~apps.adoption.selectors.adoption_tiles`,
so the overview, the adoption page, the API and exports never disagree.
"""

from django.utils import timezone

from apps.core.periods import Period
from apps.kpis.registry import KpiDefinition, KpiFilters, KpiValue

from .selectors import adoption_tiles, scope_from_filters

IGNORED = ("service", "team", "environment")


def _headline(key: str, period: Period, filters: KpiFilters) -> KpiValue:
    kpi = adoption_tiles(scope_from_filters(filters), period, as_of=timezone.now(), keys=[key])[0].kpi
    ignored = [name for name in IGNORED if getattr(filters, name)]
    if ignored:
        kpi.note = " ".join(filter(None, [kpi.note, f"Adoption is not cut by {', '.join(ignored)}."]))
    return kpi


def compute_mau(period: Period, filters: KpiFilters) -> KpiValue:
    """Distinct users with a usage event in the period (calendar MAU for a month)."""
    return _headline("mau", period, filters)


def compute_nps(period: Period, filters: KpiFilters) -> KpiValue:
    """NPS of the responses submitted in the period, with n (``KpiValue.n``); None when n = 0."""
    return _headline("nps", period, filters)


HEADLINE_KPIS = [
    KpiDefinition(key="mau", title="Monthly active users", order=60, compute=compute_mau),
    KpiDefinition(key="nps", title="NPS", order=70, compute=compute_nps),
]
