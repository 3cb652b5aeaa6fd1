"""A small client for the Prometheus HTTP API's range queries (MONITORING.md section 3), and the chunking that
keeps each query under the 11,000-points-per-series limit.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings

from apps.core import netguard

# Prometheus refuses a range query of more than 11,000 steps per series; stay clear of it.
MAX_POINTS_PER_QUERY = 10_000
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class PrometheusError(Exception):
    """A query failed. ``retryable``: the server was unreachable, slow or overloaded, so trying later may work."""

    retryable = False


class PrometheusUnavailable(PrometheusError):
    retryable = True


class PrometheusQueryError(PrometheusError):
    """The server answered, but refused or could not run the query (bad PromQL, a 4xx, a non-API answer)."""


@dataclass
class RangeSeries:
    labels: dict[str, str]
    samples: list[tuple[datetime, float]]  # finite values only
    skipped: int = 0  # NaN and infinite samples


@dataclass
class RangeResult:
    series: list[RangeSeries]
    warnings: list[str] = field(default_factory=list)


def to_datetime(ts: float | str) -> datetime:
    """Unix seconds (as Prometheus returns them, e.g. 1732693814.783) to an aware UTC datetime, exact to the µs."""
    micros = round(float(ts) * 1_000_000)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def align(moment: datetime, step_seconds: int) -> datetime:
    """The step boundary at or before ``moment`` (steps counted from the Unix epoch)."""
    seconds = math.floor(moment.timestamp() / step_seconds) * step_seconds
    return datetime.fromtimestamp(seconds, tz=UTC)


def chunk_windows(
    start: datetime, end: datetime, step_seconds: int, max_points: int = MAX_POINTS_PER_QUERY
) -> Iterator[tuple[datetime, datetime]]:
    """Split ``[start, end]`` (both evaluated) into windows of at most ``max_points`` steps each."""
    span = timedelta(seconds=step_seconds * (max_points - 1))
    step = timedelta(seconds=step_seconds)
    while start <= end:
        stop = min(start + span, end)
        yield start, stop
        start = stop + step


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def render_query(template: str, *, step_seconds: int, window: str) -> str:
    """Fill ``{step}`` and ``{window}``; other braces (label matchers) are left alone."""
    return template.replace("{step}", _duration(step_seconds)).replace("{window}", window)


class PrometheusClient:
    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}
        self.timeout = timeout
        # URLs come from admins: every connection (and redirect) goes through the outbound guard.
        self.session = netguard.session()

    def query_range(self, query: str, *, start: datetime, end: datetime, step_seconds: int) -> RangeResult:
        """Run a range query. POST with form data, as long queries need (MONITORING.md section 3)."""
        url = f"{self.base_url}/api/v1/query_range"
        data = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": str(step_seconds),
            "timeout": f"{self.timeout}s",
        }
        wait = self.timeout + settings.PROMETHEUS_TIMEOUT_GRACE
        try:
            response = self.session.post(
                url, data=data, headers=self.headers, timeout=(netguard.connect_timeout(), wait)
            )
        except netguard.OutboundRefused as exc:
            raise PrometheusUnavailable(f"{url}: {exc}") from exc
        except requests.Timeout as exc:
            raise PrometheusUnavailable(f"{url} did not answer within {wait:g} s") from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise PrometheusUnavailable(
                f"the answer from {url} was cut short or damaged ({exc}); nothing from it was stored"
            ) from exc
        except requests.RequestException as exc:
            raise PrometheusUnavailable(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
        return self._parse(url, response)

    @staticmethod
    def _parse(url: str, response: requests.Response) -> RangeResult:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in RETRYABLE_STATUS:
            detail = body.get("error") if isinstance(body, dict) else response.text[:200]
            raise PrometheusUnavailable(f"{url} answered HTTP {response.status_code}: {detail}".strip())
        if body is None and response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
            # A JSON answer that does not parse was most likely cut short on the way: worth another try.
            raise PrometheusUnavailable(
                f"the answer from {url} is not complete JSON ({len(response.content)} bytes; cut short?); "
                "nothing from it was stored"
            )
        if not isinstance(body, dict) or "status" not in body:
            raise PrometheusQueryError(
                f"{url} answered HTTP {response.status_code} with something other than a Prometheus API response: "
                f"{response.text[:200]!r}"
            )
        if body["status"] != "success":
            raise PrometheusQueryError(
                f"HTTP {response.status_code} {body.get('errorType', 'error')}: {body.get('error', 'no message')}"
            )
        data = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise PrometheusQueryError(f"expected a matrix result, got {data.get('resultType')!r}")
        series = []
        for item in data.get("result", []):
            samples, skipped = [], 0
            for ts, raw in item.get("values", []):
                value = float(raw)  # Prometheus sends strings, including "NaN", "+Inf" and "-Inf"
                if math.isfinite(value):
                    samples.append((to_datetime(ts), value))
                else:
                    skipped += 1
            series.append(RangeSeries(labels=item.get("metric", {}), samples=samples, skipped=skipped))
        return RangeResult(series=series, warnings=list(body.get("warnings", [])))
