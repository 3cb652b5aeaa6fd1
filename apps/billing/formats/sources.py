"""Streaming access to a billing file's header and records: CSV (plain or gzip, UTF-8 with or without BOM)
or Parquet, recognised by their first bytes rather than by the file name."""

import csv
import gzip
import io
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import IO, Any

from .base import BillingFileError, RowError

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_BATCH_ROWS = 10_000
EXPECTED_FILE = "CSV (optionally gzip-compressed) or Parquet"
# What a damaged or mis-encoded stream raises while it is read (gzip.BadGzipFile is an OSError).
_STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError, csv.Error)

Source = str | os.PathLike[str] | IO[bytes]
# A record's values in the order of the source's columns, or why the record cannot be read.
Record = Sequence[Any] | RowError


class _RawReader(io.RawIOBase):
    """Lets io.BufferedReader wrap a file object that has read() but no peek() or seek()."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _peek(stream: IO[bytes]) -> tuple[IO[bytes], bytes]:
    """The first bytes of a stream, leaving the stream positioned where it was."""
    if isinstance(stream, io.TextIOBase):
        raise TypeError("billing files must be opened in binary mode ('rb')")
    if isinstance(stream, io.BufferedReader):
        return stream, stream.peek(4)[:4]
    if stream.seekable():
        start = stream.tell()
        head = stream.read(4)
        stream.seek(start)
        return stream, head
    buffered = io.BufferedReader(_RawReader(stream))
    return buffered, buffered.peek(4)[:4]


class TableSource(ABC):
    """A file's column names and an iterator over its records, numbered as a spreadsheet numbers rows.

    Each record holds one value per column, in the order of ``columns``.
    """

    columns: list[str]
    text_only = False  # whether every value is a str

    @abstractmethod
    def records(self) -> Iterator[tuple[int, Record]]: ...

    @abstractmethod
    def close(self) -> None: ...


def open_source(source: Source, filename: str) -> TableSource:
    """Open a path or a binary file object; the caller's file object is left open on close()."""
    owned = isinstance(source, str | os.PathLike)
    try:
        stream: IO[bytes] = open(source, "rb") if owned else source  # noqa: SIM115 - closed by the TableSource
    except OSError as exc:
        raise BillingFileError(filename, f"cannot be opened ({exc.strerror})", expected=EXPECTED_FILE) from None
    try:
        stream, head = _peek(stream)
        if head == PARQUET_MAGIC:
            return ParquetSource(stream, filename, owned=owned)
        if head.startswith(ZIP_MAGIC):
            raise BillingFileError(filename, "is a ZIP archive (an Excel workbook?)", expected=EXPECTED_FILE)
        return CsvSource(stream, filename, owned=owned, compressed=head.startswith(GZIP_MAGIC))
    except BaseException:
        if owned:
            stream.close()
        raise


def _check_header(filename: str, columns: list[str]) -> None:
    if not any(columns):
        raise BillingFileError(filename, "the header row has no column names", row=1, expected="a header row")
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise BillingFileError(filename, "appears twice in the header", row=1, column=name, expected="unique names")
        seen.add(name)


class CsvSource(TableSource):
    text_only = True

    def __init__(self, stream: IO[bytes], filename: str, *, owned: bool, compressed: bool) -> None:
        self.filename = filename
        self._stream = stream
        self._owned = owned
        self._compressed = compressed
        layer: IO[bytes] = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
        # utf-8-sig drops a BOM when there is one; newline="" lets csv handle quoted line breaks.
        self._text = io.TextIOWrapper(layer, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        self._row = 0
        self._closed = False
        header = self._next()
        if header is None:
            raise BillingFileError(filename, "the file is empty", expected="a header row and at least one data row")
        self.columns = [name.strip() for name in header]
        _check_header(filename, self.columns)

    def _next(self) -> list[str] | None:
        """The next CSV record; stream damage becomes a BillingFileError naming the row reached."""
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except _STREAM_ERRORS as exc:
            raise self._damaged(exc, self._row + 1) from None
        self._row += 1
        return record

    def _damaged(self, exc: Exception, row: int) -> BillingFileError:
        if isinstance(exc, EOFError):
            return BillingFileError(
                self.filename,
                "the gzip data ends early: the file is truncated",
                row=row,
                expected="a complete gzip file",
            )
        if isinstance(exc, gzip.BadGzipFile | zlib.error):
            return BillingFileError(self.filename, f"the gzip data is damaged ({exc})", row=row)
        if isinstance(exc, UnicodeDecodeError):
            return BillingFileError(
                self.filename, "is not UTF-8 text", row=row, expected="a UTF-8 CSV file, with or without BOM"
            )
        return BillingFileError(self.filename, f"is not valid CSV ({exc})", row=row)

    def records(self) -> Iterator[tuple[int, Record]]:
        width = len(self.columns)
        row = self._row
        try:
            for values in self._reader:
                row += 1
                if len(values) == width:
                    yield row, values
                elif values:  # a blank line has no values and is skipped
                    problem = f"has {len(values)} fields but the header has {width}"
                    yield row, RowError(row, None, None, problem, f"{width} fields per row")
        except _STREAM_ERRORS as exc:
            raise self._damaged(exc, row + 1) from None
        finally:
            self._row = row

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Detach rather than close the text layer: closing it would close a caller's file object too.
        layer = self._text.detach()
        if self._compressed:
            layer.close()  # GzipFile.close() leaves the stream it wraps open
        if self._owned:
            self._stream.close()


class ParquetSource(TableSource):
    def __init__(self, stream: IO[bytes], filename: str, *, owned: bool) -> None:
        import pyarrow.parquet as pq  # heavy: imported only when a Parquet file arrives

        self.filename = filename
        self._stream = stream
        self._owned = owned
        try:
            self._file = pq.ParquetFile(stream)
            self.columns = _flatten(self._file.schema_arrow.empty_table()).column_names
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
            problem = f"is not a readable Parquet file ({exc})"
            raise BillingFileError(filename, problem, expected=EXPECTED_FILE) from None
        _check_header(filename, self.columns)

    def records(self) -> Iterator[tuple[int, Record]]:
        import pyarrow as pa

        row = 1
        batches = None
        while True:
            try:
                batches = batches or self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS)
                batch = next(batches, None)
                if batch is None:
                    return
                # Nested columns become dotted names (service.description), as BigQuery's CSV export writes them.
                columns = [column.to_pylist() for column in _flatten(pa.Table.from_batches([batch])).columns]
            except Exception as exc:  # damaged pages and values Python cannot hold (year 10000...)
                raise BillingFileError(self.filename, f"the Parquet data cannot be read ({exc})", row=row + 1) from None
            for record in zip(*columns, strict=True):
                row += 1
                yield row, record

    def close(self) -> None:
        if self._owned:
            self._stream.close()


def _flatten(table: Any) -> Any:
    import pyarrow as pa

    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table
