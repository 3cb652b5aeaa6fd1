"""Drift between a reference and a current distribution: PSI, and the two-sample K-S test for numeric samples.

Distributions arrive as raw samples, histograms (bin edges and counts) or category counts (see
``Distribution``). The choices follow Evidently's, as MONITORING.md section 5 records them:

- **Binning** (PSI): a numeric sample with more than 20 distinct reference values is cut at
  ``numpy.histogram_bin_edges(reference + current, bins="sturges")``; otherwise each distinct value is a
  category. Histograms keep their own bins (reference and current must share the edges; a sample compared
  with a histogram is binned on the histogram's edges, values outside them counted in the end bins).
- **PSI** = ``sum((ref_share - cur_share) * ln(ref_share / cur_share))``; a zero share is replaced by 0.0001,
  or by the smallest non-zero share / 10^6 when that share is itself at most 0.0001.
- **K-S**: ``scipy.stats.ks_2samp(reference, current)``; drift when the p-value is at most 0.05. It needs raw
  samples on both sides.
- Fewer than ``MIN_SAMPLES`` observations on either side is "no data", not drift: tiny samples give false
  alarms (Evidently issues #20, #50).
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_SAMPLES = 30
SMALL_SHARE = 0.0001
DISTINCT_VALUES_FOR_BINS = 20


class DriftError(ValueError):
    """The distributions cannot be compared; the message says why."""


@dataclass
class DistributionData:
    """One side of a comparison: the distributions of a window added together."""

    kind: str  # "numeric" | "categorical"
    samples: list[float] | None = None
    edges: list[float] | None = None
    counts: list[float] | None = None
    categories: dict[str, float] | None = None

    @property
    def n(self) -> float:
        if self.samples is not None:
            return len(self.samples)
        if self.counts is not None:
            return sum(self.counts)
        return sum((self.categories or {}).values())


@dataclass(frozen=True)
class DriftResult:
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    n_reference: float = 0
    n_current: float = 0


def combine(parts: Iterable[dict]) -> DistributionData | None:
    """Add up the distributions of a window (dicts with kind, samples, edges, counts, categories).

    Samples are concatenated, histograms with the same edges added bin by bin, categories added by name. A
    window mixing samples and histograms keeps both: the samples are binned on the histogram's edges.
    """
    parts = list(parts)
    if not parts:
        return None
    kinds = {p["kind"] for p in parts}
    if len(kinds) > 1:
        raise DriftError("the window mixes numeric and categorical distributions of the same feature")
    kind = kinds.pop()
    if kind == "categorical":
        categories: dict[str, float] = {}
        for p in parts:
            for name, count in (p.get("categories") or {}).items():
                categories[name] = categories.get(name, 0) + count
        return DistributionData(kind, categories=categories)
    samples: list[float] | None = None
    edges: list[float] | None = None
    counts: list[float] | None = None
    for p in parts:
        if p.get("samples") is not None:
            samples = (samples or []) + list(p["samples"])
        if p.get("edges") is not None:
            if edges is None:
                edges, counts = list(p["edges"]), list(p["counts"])
            elif list(p["edges"]) != edges:
                raise DriftError("histograms in one window have different bin edges; push them with the same edges")
            else:
                counts = [a + b for a, b in zip(counts, p["counts"], strict=True)]
    if edges is not None and samples is not None:
        counts = [a + b for a, b in zip(counts, _bin(samples, edges), strict=True)]
        samples = None
    return DistributionData(kind, samples=samples, edges=edges, counts=counts)


def _bin(samples: Sequence[float], edges: Sequence[float]) -> list[float]:
    import numpy as np

    clipped = np.clip(np.asarray(samples, dtype=float), edges[0], edges[-1])
    return np.histogram(clipped, bins=np.asarray(edges, dtype=float))[0].astype(float).tolist()


def _fill_zeros(shares: list[float]) -> list[float]:
    nonzero = [s for s in shares if s > 0]
    if not nonzero:
        return shares
    smallest = min(nonzero)
    eps = smallest / 1e6 if smallest <= SMALL_SHARE else SMALL_SHARE
    return [s if s > 0 else eps for s in shares]


def psi_from_shares(reference: Sequence[float], current: Sequence[float]) -> float:
    """PSI of two share vectors over the same bins (each summing to 1)."""
    ref, cur = _fill_zeros(list(reference)), _fill_zeros(list(current))
    return float(sum((r - c) * math.log(r / c) for r, c in zip(ref, cur, strict=True)))


def shares(reference: DistributionData, current: DistributionData) -> tuple[list[float], list[float]]:
    """Reference and current shares over common bins or categories."""
    if reference.kind != current.kind:
        raise DriftError(f"the reference is {reference.kind} but the current window is {current.kind}")
    if reference.kind == "categorical":
        names = sorted(set(reference.categories or {}) | set(current.categories or {}))
        ref_counts = [(reference.categories or {}).get(k, 0) for k in names]
        cur_counts = [(current.categories or {}).get(k, 0) for k in names]
    elif reference.edges is not None or current.edges is not None:
        if reference.edges is not None and current.edges is not None and reference.edges != current.edges:
            raise DriftError("the reference and current histograms have different bin edges")
        edges = reference.edges if reference.edges is not None else current.edges
        ref_counts = reference.counts if reference.edges is not None else _bin(reference.samples or [], edges)
        cur_counts = current.counts if current.edges is not None else _bin(current.samples or [], edges)
    else:
        ref_counts, cur_counts = _sample_bins(reference.samples or [], current.samples or [])
    ref_total, cur_total = sum(ref_counts), sum(cur_counts)
    return [c / ref_total for c in ref_counts], [c / cur_total for c in cur_counts]


def _sample_bins(reference: list[float], current: list[float]) -> tuple[list[float], list[float]]:
    import numpy as np

    if len(set(reference)) > DISTINCT_VALUES_FOR_BINS:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        return (
            np.histogram(reference, bins=edges)[0].astype(float).tolist(),
            np.histogram(current, bins=edges)[0].astype(float).tolist(),
        )
    values = sorted(set(reference) | set(current))
    return [float(reference.count(v)) for v in values], [float(current.count(v)) for v in values]


def ks_test(reference: DistributionData, current: DistributionData) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample K-S test; both sides must be raw numeric samples."""
    if reference.kind != "numeric" or current.kind != "numeric":
        raise DriftError("the K-S test applies to numeric features only")
    if reference.samples is None or current.samples is None:
        raise DriftError("the K-S test needs raw samples on both sides; this feature was pushed as a histogram")
    from scipy import stats

    result = stats.ks_2samp(reference.samples, current.samples)
    return float(result.statistic), float(result.pvalue)


def compare(reference: DistributionData | None, current: DistributionData | None, method: str) -> DriftResult | None:
    """PSI or K-S between two windows, or None when either side has fewer than ``MIN_SAMPLES`` observations."""
    if reference is None or current is None:
        return None
    n_ref, n_cur = reference.n, current.n
    if n_ref < MIN_SAMPLES or n_cur < MIN_SAMPLES:
        return None
    if method == "ks":
        statistic, pvalue = ks_test(reference, current)
        return DriftResult(ks_statistic=statistic, ks_pvalue=pvalue, n_reference=n_ref, n_current=n_cur)
    ref_shares, cur_shares = shares(reference, current)
    return DriftResult(psi=psi_from_shares(ref_shares, cur_shares), n_reference=n_ref, n_current=n_cur)
