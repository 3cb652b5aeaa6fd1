"""The adoption metrics: key, label, unit, which direction is good and how they accumulate in a month.

Definitions (shared ADOPTION.md and KPIS.md section 5; one place, used by pages, API, exports and
targets):

- *Active user*: a user with at least one of the product's usage events (``Product.usage_event_names``).
- ``mau``: distinct active users in the period (calendar MAU for a month; the daily chart also shows
  the rolling 30-day line, users active in the 30 days ending with each day).
- ``dau``: average daily active users over the period's days so far; ``stickiness`` = dau / mau.
- ``trial_requests``, ``trial_starts``, ``second_trials``, ``demos``, ``trainings``: distinct people
  with that event in the period.
- ``activations``: product-user pairs whose first trial start falls in the period and who used the
  product within 30 days of it; ``activation_rate`` = activations / those first trial starts.
- ``avg_rating``: mean of the ratings (1-5) submitted in the period.
- ``sessions_per_user``: usage sessions / mau (a new session after 30 minutes idle; sessions end at
  midnight UTC); ``usage_frequency``: active days per active user.
- ``nps``: 100 x (promoters - detractors) / responses, with n and a 95 % confidence interval.
"""

from dataclasses import dataclass
from decimal import Decimal

from apps.kpis.registry import Direction
from apps.kpis.targets import Accumulation

ACTIVATION_WINDOW_DAYS = 30
SESSION_IDLE_SECONDS = 30 * 60


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    accumulation: Accumulation
    direction: Direction = Direction.UP_IS_GOOD
    decimals: int = 0
    help: str = ""

    def round(self, value: Decimal | None) -> Decimal | None:
        if value is None:
            return None
        return value.quantize(Decimal(1).scaleb(-self.decimals))


CUM, LEVEL = Accumulation.CUMULATIVE, Accumulation.LEVEL

METRICS: dict[str, Metric] = {
    m.key: m
    for m in [
        Metric("mau", "Monthly active users", "users", CUM, help="Distinct users with a usage event in the period."),
        Metric("dau", "Daily active users", "users (avg)", LEVEL, decimals=1, help="Average over the days so far."),
        Metric("stickiness", "Stickiness", "% DAU/MAU", LEVEL, decimals=1, help="Average DAU / MAU."),
        Metric("trial_requests", "Trial requests", "people", CUM),
        Metric("trial_starts", "Trial starts", "people", CUM),
        Metric("second_trials", "Second-trial requests", "people", CUM),
        Metric(
            "activations",
            "Activations",
            "people",
            CUM,
            help=f"First trial start in the period, then usage within {ACTIVATION_WINDOW_DAYS} days.",
        ),
        Metric("activation_rate", "Activation rate", "%", LEVEL, decimals=1, help="Activations / first trial starts."),
        Metric("demos", "Demos attended", "people", CUM),
        Metric("trainings", "Training completions", "people", CUM),
        Metric("avg_rating", "Average rating", "of 5", LEVEL, decimals=2),
        Metric("sessions_per_user", "Sessions per user", "sessions", CUM, decimals=1),
        Metric("usage_frequency", "Active days per user", "days", CUM, decimals=1),
        Metric("nps", "NPS", "", LEVEL, decimals=1, help="100 x (promoters - detractors) / responses."),
    ]
}

TILE_KEYS = [
    "mau",
    "stickiness",
    "trial_requests",
    "trial_starts",
    "second_trials",
    "activation_rate",
    "demos",
    "trainings",
    "avg_rating",
    "sessions_per_user",
    "usage_frequency",
    "nps",
]

# Columns of the store / region / role table: all of them come from the daily rollup in one query.
BREAKDOWN_KEYS = [
    "mau",
    "dau",
    "stickiness",
    "trial_requests",
    "trial_starts",
    "second_trials",
    "demos",
    "trainings",
    "avg_rating",
    "sessions_per_user",
    "usage_frequency",
]
