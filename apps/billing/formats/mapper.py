"""What every supported format provides: how to recognise its header and how to map one record."""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .base import NormalizedRow
from .conformance import ConformanceReport
from .values import Cells, Columns


class FormatMapper(ABC):
    key: ClassVar[str]
    label: ClassVar[str]
    required: ClassVar[tuple[str, ...]]  # columns without which no row can be mapped
    signature: ClassVar[tuple[str, ...]]  # columns whose presence identifies the format
    currency_column: ClassVar[str]
    case_insensitive: ClassVar[bool] = False
    aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    placeholders: ClassVar[frozenset[str]] = frozenset()
    focus_rules: ClassVar[bool] = False  # apply the FOCUS format rules (null spelling, date/time form)

    def __init__(self, header: Sequence[str], report: ConformanceReport, *, text_only: bool = False) -> None:
        """``text_only``: every value the records hold is a str (as in CSV files), never None or a number."""
        self.text_only = text_only
        self.columns = self.find_columns(header)
        self.cells = Cells(self.columns, report, placeholders=self.placeholders, focus_rules=self.focus_rules)

    @classmethod
    def find_columns(cls, header: Sequence[str]) -> Columns:
        return Columns(header, case_insensitive=cls.case_insensitive, aliases=cls.aliases)

    @classmethod
    def matches(cls, header: Sequence[str]) -> bool:
        columns = cls.find_columns(header)
        return all(columns.find(name) for name in cls.signature)

    @classmethod
    def missing(cls, header: Sequence[str]) -> list[str]:
        return cls.find_columns(header).missing(cls.required)

    @property
    def source_version(self) -> str | None:
        """The FOCUS version a native FOCUS file follows; None for provider formats."""
        return None

    def read(self, row: int, record: Mapping[str, Any]) -> NormalizedRow:
        """Map one record; raises CellError for a cell that cannot be read."""
        self.cells.load(row, record)
        return self.map(self.cells)

    @abstractmethod
    def map(self, cells: Cells) -> NormalizedRow: ...
