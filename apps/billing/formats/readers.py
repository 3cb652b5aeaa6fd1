"""Reading a billing export of any supported format as a stream of normalised FOCUS rows.

Files are all-or-nothing. Rows are yielded while the file is read, and an invalid row, a second
billing currency or a damaged stream only shows at the point it is reached: the caller must write
the rows inside a transaction and roll back on BillingFileError. After the first invalid row no more
rows are yielded, but reading goes on to collect up to MAX_ROW_ERRORS errors for one message.
"""

import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType

from .aws import AwsCur2Mapper, AwsCurLegacyMapper
from .azure import AzureEaMapper, AzureMcaMapper
from .base import BillingFileError, CellError, NormalizedRow, RowError, show
from .conformance import ConformanceChecker, ConformanceReport
from .focus import FocusMapper
from .gcp import GcpMapper
from .mapper import FormatMapper
from .sources import Source, open_source

MAX_ROW_ERRORS = 50
# Detection order matters only for headers carrying two formats' signatures; FOCUS goes first because
# provider FOCUS exports add provider columns next to the FOCUS ones.
MAPPERS: dict[str, type[FormatMapper]] = {
    m.key: m for m in (FocusMapper, AwsCurLegacyMapper, AwsCur2Mapper, AzureEaMapper, AzureMcaMapper, GcpMapper)
}
FORMATS: dict[str, str] = {key: mapper.label for key, mapper in MAPPERS.items()}


def detect_format(header: Sequence[str]) -> str | None:
    """The format key whose signature columns the header has, or None."""
    columns = [name.strip().lstrip("\ufeff") for name in header]
    return next((key for key, mapper in MAPPERS.items() if mapper.matches(columns)), None)


def required_columns(fmt: str) -> tuple[str, ...]:
    """The columns a file of this format must have (Azure matches them case-insensitively)."""
    return MAPPERS[fmt].required


def _name_of(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.path.basename(os.fspath(source))
    return os.path.basename(str(getattr(source, "name", "") or "")) or "uploaded file"


class BillingFileReader:
    """One billing file: its header is checked on construction, ``rows()`` streams the normalised rows.

    ``fmt`` is a FORMATS key, or None to detect it from the header. After ``rows()`` is exhausted,
    ``billing_periods`` holds every (start, end) the file covers, ``currency`` its billing currency
    and ``report`` its conformance findings.
    """

    def __init__(self, source: Source, *, fmt: str | None, filename: str | None = None) -> None:
        if fmt is not None and fmt not in MAPPERS:
            raise ValueError(f"unknown billing format {fmt!r}; expected one of {', '.join(MAPPERS)}")
        self.filename = filename or _name_of(source)
        self.report = ConformanceReport()
        self.errors: list[RowError] = []
        self.billing_periods: set[tuple[datetime, datetime]] = set()
        self.currency: str | None = None
        self.rows_read = 0
        self._currency_row = 0
        self._source = open_source(source, self.filename)
        try:
            self.columns = self._source.columns
            self.format = self._check_format(fmt)
            self._mapper = MAPPERS[self.format](self.columns, self.report, text_only=self._source.text_only)
        except BaseException:
            self._source.close()
            raise
        self._checker = ConformanceChecker(self.report)
        self.focus_version = self._mapper.source_version

    def _check_format(self, fmt: str | None) -> str:
        detected = detect_format(self.columns)
        if fmt is None:
            if detected is None:
                raise BillingFileError(
                    self.filename,
                    "the header matches no supported billing export",
                    row=1,
                    expected="one of: " + "; ".join(FORMATS.values()),
                )
            fmt = detected  # a detected format still needs every required column
        elif detected is not None and detected != fmt:
            raise BillingFileError(
                self.filename,
                f"the header looks like {FORMATS[detected]}, not {FORMATS[fmt]} as chosen",
                row=1,
                expected=f"the columns of {FORMATS[fmt]}",
            )
        missing = MAPPERS[fmt].missing(self.columns)
        if missing:
            raise BillingFileError(
                self.filename,
                f"required column{'s' if len(missing) > 1 else ''} missing from the header",
                row=1,
                column=", ".join(missing),
                expected=f"by {FORMATS[fmt]}",
            )
        return fmt

    def rows(self) -> Iterator[NormalizedRow]:
        """The file's rows, once; the file is closed when the iteration ends."""
        read, check, periods = self._mapper.read, self._checker.check, self.billing_periods
        start = end = None  # the last billing period added to billing_periods
        try:
            for number, record in self._source.records():
                self.rows_read += 1
                if record.__class__ is RowError:
                    self._reject(record)
                    continue
                try:
                    row = read(number, record)
                except CellError as exc:
                    self._reject(exc.at(number))
                    continue
                self._check_currency(row)
                check(row)
                if row.billing_period_start is not start or row.billing_period_end is not end:
                    start, end = row.billing_period
                    periods.add((start, end))
                if not self.errors:
                    yield row
            if self.errors:
                raise BillingFileError.from_row_errors(self.filename, self.errors, stopped_early=False)
            if self.rows_read == 0:
                raise BillingFileError(
                    self.filename, "the file has a header but no data rows", row=2, expected="at least one billing row"
                )
        finally:
            self.close()

    def _reject(self, error: RowError) -> None:
        self.errors.append(error)
        if len(self.errors) >= MAX_ROW_ERRORS:
            raise BillingFileError.from_row_errors(self.filename, self.errors, stopped_early=True)

    def _check_currency(self, row: NormalizedRow) -> None:
        if row.billing_currency == self.currency:
            return
        if self.currency is None:
            self.currency, self._currency_row = row.billing_currency, row.row
        elif row.billing_currency != self.currency:
            # One file, one currency: totals across currencies would be meaningless.
            self.errors.append(
                RowError(
                    row.row,
                    self._mapper.columns.label(self._mapper.currency_column),
                    row.billing_currency,
                    f"{show(row.billing_currency)} differs from {show(self.currency)}, "
                    f"the billing currency of row {self._currency_row}",
                    "one billing currency per file",
                )
            )
            raise BillingFileError.from_row_errors(self.filename, self.errors, stopped_early=False)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "BillingFileReader":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def iter_rows(source: Source, *, fmt: str | None, filename: str | None = None) -> Iterator[NormalizedRow]:
    """Stream a file's normalised rows; raises BillingFileError (possibly after some rows) if it is invalid.

    Use BillingFileReader directly to also get the conformance report and the billing periods.
    """
    with BillingFileReader(source, fmt=fmt, filename=filename) as reader:
        yield from reader.rows()
