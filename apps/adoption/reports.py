"""Selector results as flat rows: the API and the CSV exports serialise the same rows, so they agree."""

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from apps.core.csvexport import safe_cell

from .metrics import BREAKDOWN_KEYS, METRICS

COLUMNS = {
    "summary": (
        "key",
        "title",
        "unit",
        "value",
        "previous",
        "change",
        "change_percent",
        "n",
        "detail",
        "target",
        "direction",
        "rag",
        "projected",
        "reaches_target",
        "progress_percent",
        "incomplete",
        "sparkline",
        "note",
    ),
    "funnel": ("step", "label", "users", "step_conversion_percent", "overall_conversion_percent"),
    "trend": ("day", "dau", "mau_rolling_30d", "stickiness_percent"),
    "retention": ("cohort", "cohort_size", "month", "retained", "retained_percent", "incomplete"),
    "locations": ("key", "name", *BREAKDOWN_KEYS),
    "nps-responses": ("submitted_at", "product", "campaign", "score", "comment"),
}


def _s(value: Any) -> Any:
    """Decimals as strings (exact), floats rounded to 4 places, everything else as is."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def summary_rows(tiles) -> list[dict]:
    rows = []
    for t in tiles:
        s = t.status
        rows.append(
            {
                "key": t.kpi.key,
                "title": t.kpi.title,
                "unit": t.kpi.unit,
                "value": _s(t.kpi.value),
                "previous": _s(t.kpi.previous),
                "change": _s(t.kpi.change),
                "change_percent": _s(t.change_percent),
                "n": t.kpi.n,
                "detail": t.detail,
                "target": _s(t.kpi.target),
                "direction": t.kpi.direction.value,
                "rag": s.rag.value if s and s.rag else None,
                "projected": _s(t.metric.round(s.projected)) if s and s.projected is not None else None,
                "reaches_target": s.reaches if s else None,
                "progress_percent": _s(s.progress_percent) if s else None,
                "incomplete": t.incomplete,
                "sparkline": [_s(v) for v in t.kpi.sparkline],
                "note": t.kpi.note,
            }
        )
    return rows


def funnel_rows(steps) -> list[dict]:
    return [
        {
            "step": s.key,
            "label": s.label,
            "users": s.users,
            "step_conversion_percent": _s(s.step_conversion),
            "overall_conversion_percent": _s(s.overall_conversion),
        }
        for s in steps
    ]


def trend_rows(points) -> list[dict]:
    return [
        {"day": p.day.isoformat(), "dau": p.dau, "mau_rolling_30d": p.mau_30, "stickiness_percent": _s(p.stickiness)}
        for p in points
    ]


def retention_rows(table) -> list[dict]:
    rows = []
    for row in table.rows:
        for k in table.offsets:
            if row.retained[k] is None:
                continue
            rows.append(
                {
                    "cohort": row.month.strftime("%Y-%m"),
                    "cohort_size": row.size,
                    "month": k,
                    "retained": row.retained[k],
                    "retained_percent": _s(row.rates[k]),
                    "incomplete": row.incomplete == k,
                }
            )
    return rows


def breakdown_export_rows(rows: Iterable[dict]) -> list[dict]:
    out = []
    for r in rows:
        item = {"key": r["key"], "name": r["name"]}
        for key in BREAKDOWN_KEYS:
            value = r[key]
            if isinstance(value, float):
                value = METRICS[key].round(Decimal(str(value)))
            item[key] = _s(value)
        out.append(item)
    return out


def nps_summary(score) -> dict:
    interval = score.interval
    return {
        "nps": _s(score.score),
        "n": score.n,
        "promoters": score.promoters,
        "passives": score.passives,
        "detractors": score.detractors,
        "ci95_low": _s(interval[0]) if interval else None,
        "ci95_high": _s(interval[1]) if interval else None,
        "label": score.label,
    }


def nps_response_rows(responses) -> list[dict]:
    return [
        {
            "submitted_at": r.submitted_at.isoformat(),
            "product": r.campaign.product.slug,
            "campaign": r.campaign.slug,
            "score": r.score,
            "comment": r.comment,
        }
        for r in responses
    ]


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        value = " ".join("" if v is None else str(v) for v in value)
    return safe_cell(value)


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()
