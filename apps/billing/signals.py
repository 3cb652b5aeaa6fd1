import logging

from django.db import DatabaseError, transaction

from . import partitions

logger = logging.getLogger(__name__)


def _drop_empty() -> None:
    try:
        partitions.drop_empty()
    except DatabaseError as exc:  # the next import tries again
        logger.warning("empty line-item partitions not dropped: %s", exc)


def import_deleted(sender, instance, **kwargs) -> None:
    """A deleted import (or source) leaves its line-item partition empty: drop it once the deletion commits."""
    if partitions.partitioned():
        transaction.on_commit(_drop_empty)
