"""CSV downloads that a spreadsheet cannot turn into formulas.

Every CSV the portal serves is written through ``safe_cell`` (``csv_response``, ``csv_download`` or
``SafeCsvWriter``): text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed
with an apostrophe, so Excel, LibreOffice and Google Sheets show it as text instead of evaluating it
(OWASP's CSV injection advice). Numbers stay numbers: int, float and Decimal values are never touched,
and neither is text that is a plain negative number such as ``-12.50`` (how amounts are formatted).
"""

import csv
import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.http import HttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# "-12", "-0.5", "-1.2E-3": a negative number, which a spreadsheet reads as a number, not a formula.
NEGATIVE_NUMBER = re.compile(r"-(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """Text starting like a formula is prefixed with an apostrophe; numbers and None ("") pass through."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not NEGATIVE_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class SafeCsvWriter:
    """``csv.writer`` whose rows go through ``safe_cell``."""

    def __init__(self, stream, **kwargs):
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_download(filename: str) -> tuple[HttpResponse, SafeCsvWriter]:
    """An empty CSV attachment response and a safe writer into it."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response, SafeCsvWriter(response)


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> HttpResponse:
    response, writer = csv_download(filename)
    writer.writerow(header)
    writer.writerows(rows)
    return response
