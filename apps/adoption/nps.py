"""Net Promoter Score arithmetic (pure).

Promoters answer 9-10, passives 7-8, detractors 0-6; ``NPS = 100 x (promoters - detractors) / n``.
The score is never shown without n, and "no responses" rather than 0 when n = 0.

The 95 % interval is the adjusted-Wald interval (Rocks 2016, *The American Statistician*; Sauro and
Lewis, MeasuringU 2021), the best performer in their comparisons: add 3 to n and 3/4 to both the
promoters and the detractors, then use the standard error of a difference of two proportions from
one sample::

    n' = n + 3;  p = (promoters + 0.75) / n';  d = (detractors + 0.75) / n'
    se = sqrt((p + d - (p - d)^2) / n')
    interval = 100 x ((p - d) - 1.96 se, (p - d) + 1.96 se), clipped to -100..100
"""

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

Z_95 = 1.959964
ONE_DECIMAL = Decimal("0.1")


def bucket(score: int) -> str:
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


@dataclass(frozen=True)
class NpsScore:
    promoters: int
    passives: int
    detractors: int

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> Decimal | None:
        if self.n == 0:
            return None
        raw = Decimal(100 * (self.promoters - self.detractors)) / Decimal(self.n)
        return raw.quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)

    @property
    def interval(self) -> tuple[Decimal, Decimal] | None:
        if self.n == 0:
            return None
        n_adj = self.n + 3
        p = (self.promoters + 0.75) / n_adj
        d = (self.detractors + 0.75) / n_adj
        centre = p - d
        se = math.sqrt(max(0.0, p + d - centre**2) / n_adj)
        low, high = max(-1.0, centre - Z_95 * se), min(1.0, centre + Z_95 * se)
        return (
            Decimal(str(100 * low)).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP),
            Decimal(str(100 * high)).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP),
        )

    @property
    def label(self) -> str:
        """The score as a person reads it: "+32.0 (n = 54; 95 % CI +12.1 to +49.8)" or "no responses"."""
        if self.n == 0:
            return "no responses"
        low, high = self.interval
        return f"{self.score:+} (n = {self.n}; 95 % CI {low:+} to {high:+})"
