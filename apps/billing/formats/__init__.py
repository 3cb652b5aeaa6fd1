"""Billing export readers: FOCUS, AWS CUR (legacy and 2.0), Azure cost details (EA, MCA), GCP detailed export.

Every format becomes a stream of NormalizedRow (FOCUS 1.2 columns) with conformance findings on the
side. Pure Python: no Django imports, so the importer, management commands and tests share it.
"""

from .azure import keep_from_actual_cost
from .base import FOCUS_COLUMNS, BillingFileError, NormalizedRow, RowError
from .conformance import RULES, ConformanceReport
from .readers import FORMATS, MAX_ROW_ERRORS, BillingFileReader, detect_format, iter_rows, required_columns

__all__ = [
    "FOCUS_COLUMNS",
    "FORMATS",
    "MAX_ROW_ERRORS",
    "RULES",
    "BillingFileError",
    "BillingFileReader",
    "ConformanceReport",
    "NormalizedRow",
    "RowError",
    "detect_format",
    "iter_rows",
    "keep_from_actual_cost",
    "required_columns",
]
