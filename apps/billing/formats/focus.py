"""Native FOCUS files (1.0 to 1.3, from any provider or tool).

A FOCUS file can hold millions of rows, so its rows are read by a function written for the file's
header when the file is opened: one straight run of per-column steps, without a call or a dictionary
per cell. Each step reads the common shapes of a cell itself (text that needs no note, a plain decimal
or a date/time read before, the NULL literal) and hands anything else to ``Cells``, which has the
complete rules, notes and error messages. The function's text is built from column positions and
kinds only, never from the file's column names; ``FocusMapper.source`` shows it.
"""

from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from functools import partial
from typing import Any

from .base import (
    DATETIME_COLUMNS,
    DECIMAL_COLUMNS,
    ENUMERATIONS,
    FOCUS_1_3_COLUMNS,
    FOCUS_COLUMNS,
    KEY_VALUE_COLUMNS,
    MANDATORY_COLUMNS,
    NormalizedRow,
)
from .conformance import ConformanceReport
from .mapper import FormatMapper
from .values import NULL_LITERAL, Cells

_SINCE_1_2 = frozenset({"InvoiceId", "BillingAccountType", "SubAccountType", "PricingCurrency"})
_SINCE_1_1 = frozenset({"ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "CapacityReservationId"})
# NormalizedRow's FOCUS fields in the order its constructor takes them, between ``row`` and ``extras``.
_FIELDS = [f for f in fields(NormalizedRow) if f.name not in ("row", "extras")]
_REQUIRED_FIELDS = frozenset(f.name for f in _FIELDS if f.default is MISSING and f.default_factory is MISSING)

# The step for each kind of column; {v} is the cell's variable, {i} its position in the header, and
# {other} what to do with a cell the step does not read itself (see _OTHER). {not_str} and {if_str}
# guard against values that are not text (Parquet), and are empty when every value is text (CSV).
# Date/times not in the strict form get a note, as FOCUS files follow the FOCUS format rules.
_STEPS = {
    "text": """\
    if {not_str}{v} in special or {v}.isspace():
{other}""",
    "enum": """\
    if {not_str}{v} not in allowed_{i}:
{other}""",
    "decimal": """\
    known = decimals.get({v}){if_str}
    if known is None{and_str}:
        known = plain_decimal({v})
    if known is not None:
        {v} = known
    else:
{other}""",
    "datetime": """\
    parsed = datetimes.get({v}){if_str}
    if parsed is not None:
        if not parsed[1]:
            add_key(format_{i})
            add_value({v})
        {v} = parsed[0]
    else:
{other}""",
    "key_values": """\
    known = key_values.get({v}){if_str}
    if known is not None:
        if known[1]:
            replay_{i}(known[1])
        {v} = dict(known[0])
    else:
{other}""",
}
# A NULL literal is noted and read as None where the column may be null; anything else goes to {slow}.
_OTHER = {
    "nullable": """\
        if {str_and}{v} == {null}:
            add_key(null_{i})
            add_value({v})
            {v} = None
        else:
            {v} = {slow}
""",
    "required": """\
        {v} = {slow}
""",
}


def focus_version(header: Sequence[str]) -> str:
    """The lowest FOCUS version whose columns the header uses (files do not state their version)."""
    columns = set(header)
    if columns & FOCUS_1_3_COLUMNS:
        return "1.3"
    if columns & _SINCE_1_2:
        return "1.2"
    if columns & _SINCE_1_1:
        return "1.1"
    return "1.0"


class FocusMapper(FormatMapper):
    key = "focus"
    label = "FOCUS 1.0-1.3"
    required = (
        "BilledCost",
        "EffectiveCost",
        "BillingCurrency",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
    )
    signature = ("BilledCost", "ChargePeriodStart", "BillingPeriodStart")
    currency_column = "BillingCurrency"
    # Placeholders the spec and Azure's FocusCost export use for "no value".
    placeholders = frozenset({"-2", "Unassigned", "Not Applicable"})
    focus_rules = True

    def __init__(self, header: Sequence[str], report: ConformanceReport, *, text_only: bool = False) -> None:
        super().__init__(header, report, text_only=text_only)
        self._header = list(header)
        extra = [column for column in header if column not in FOCUS_COLUMNS]
        for column in extra:
            if not column.startswith("x_"):
                report.note("column-prefix", row=None, column=column)
        for column in MANDATORY_COLUMNS:
            if column not in self._header:
                report.note("mandatory-column-missing", row=None, column=column)
        self.source, self._read_row = self._compile()  # the source is kept for reading, not run again

    def _kind(self, column: str) -> str:
        if column in DECIMAL_COLUMNS:
            return "decimal"
        if column in DATETIME_COLUMNS:
            return "datetime"
        if column in KEY_VALUE_COLUMNS:
            return "key_values"
        if column in ENUMERATIONS:
            return "enum"
        return "text"  # BillingCurrency is the one required text column; the file's other columns go to extras

    def _compile(self) -> tuple[str, Callable[[int, Sequence[Any]], NormalizedRow]]:
        """The source and the function that maps one record of this file's header to a NormalizedRow.

        Values are read in header order, FOCUS columns first and then the others, as notes must come in
        that order; they are passed to NormalizedRow in field order, a field the file lacks as None.
        """
        cells = self.cells
        add_key, add_value = cells.report.appenders()
        namespace: dict[str, Any] = {
            "NormalizedRow": NormalizedRow,
            "add_key": add_key,
            "add_value": add_value,
            "cells": cells,
            "datetimes": cells.datetimes,
            "decimals": cells.decimals,
            "plain_decimal": cells.plain_decimal,
            "key_values": cells.key_value_texts,
            "special": cells.special,
        }
        width = len(self._header)
        names = [f"v{i}" for i in range(width)]
        lines = ["def read_row(row, record):\n", f"    {', '.join(names)}{',' if width == 1 else ''} = record\n"]
        fields: dict[str, str] = {}
        extras: list[int] = []
        for i, column in enumerate(self._header):
            if column not in FOCUS_COLUMNS:
                extras.append(i)
                continue
            kind = self._kind(column)
            lines.append(self._step(namespace, i, column, kind))
            fields[FOCUS_COLUMNS[column]] = names[i]
        lines.append("    extras = {}\n")
        for i in extras:
            namespace[f"column_{i}"] = self._header[i]
            lines.append(self._step(namespace, i, self._header[i], "extra"))
            lines.append(f"    if {names[i]} is not None:\n        extras[column_{i}] = {names[i]}\n")
        lines.append("    if cells.extras:\n        extras.update(cells.extras)\n")
        if fields.keys() >= _REQUIRED_FIELDS:
            values = ", ".join(fields.get(f.name, "None") for f in _FIELDS)
            lines.append(f"    return NormalizedRow(row, {values}, extras)\n")
        else:  # NormalizedRow refuses the row, naming the fields it lacks
            values = ", ".join(f"{name}={value}" for name, value in fields.items())
            lines.append(f"    return NormalizedRow(row=row, extras=extras, {values})\n")
        source = "".join(lines)
        exec(compile(source, f"<FOCUS reader for {width} columns>", "exec"), namespace)
        return source, namespace["read_row"]

    def _step(self, namespace: dict[str, Any], i: int, column: str, kind: str) -> str:
        """The source of column ``i``'s step, with the values it uses added to ``namespace``."""
        cells = self.cells
        required = column in self.required
        if kind == "decimal":
            slow = partial(cells.decimal, column, required=required)
        elif kind == "datetime":
            slow = partial(cells.datetime, column, required=required)
        elif kind == "key_values":
            slow = partial(cells.key_values, column)
            namespace[f"replay_{i}"] = partial(self._replay, column)
        elif kind == "enum":
            slow = partial(cells.enum, column, ENUMERATIONS[column])
            namespace[f"allowed_{i}"] = frozenset(ENUMERATIONS[column])
        elif kind == "text":
            slow = partial(cells.text, column, required=required, expected="a currency code such as USD")
        else:  # a column that is not FOCUS's, kept in extras
            slow = partial(cells.text, column)
        namespace[f"null_{i}"] = ("null-literal", column)
        namespace[f"format_{i}"] = ("datetime-format", column)
        namespace[f"slow_{i}"] = slow
        v = f"v{i}"
        guards = {"not_str": "", "if_str": "", "and_str": "", "str_and": ""}
        if not self.text_only:
            guards = {
                "not_str": f"{v}.__class__ is not str or ",
                "if_str": f" if {v}.__class__ is str else None",
                "and_str": f" and {v}.__class__ is str",
                "str_and": f"{v}.__class__ is str and ",
            }
        other = _OTHER["required" if required else "nullable"].format(
            v=v, i=i, slow=f"slow_{i}()", null=repr(NULL_LITERAL), **guards
        )
        return _STEPS["text" if kind == "extra" else kind].format(v=v, i=i, other=other, **guards)

    def _replay(self, column: str, notes: tuple[tuple[str, str], ...]) -> None:
        """Record again the notes a key-value text gave when it was first read."""
        add_key, add_value = self.cells.report.appenders()
        for rule, value in notes:
            add_key((rule, column))
            add_value(value)

    @property
    def source_version(self) -> str:
        return focus_version(self._header)

    def read(self, row: int, record: Sequence[Any]) -> NormalizedRow:
        self.cells.load(row, record)
        return self._read_row(row, record)

    def map(self, cells: Cells) -> NormalizedRow:
        return self._read_row(cells.row, cells.record)
