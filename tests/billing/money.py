from decimal import Decimal

from django.db import connection


def assert_money_equal(actual, expected) -> None:
    """Exact on PostgreSQL (numeric sums every digit); on the embedded SQLite, whose sums go through
    floating point (README: not for exact accounting), equal to 1e-9 relative."""
    actual, expected = Decimal(str(actual)), Decimal(str(expected))
    if connection.vendor == "postgresql":
        assert actual == expected
    else:
        assert abs(actual - expected) <= max(abs(expected), Decimal(1)) * Decimal("1e-9"), (actual, expected)
