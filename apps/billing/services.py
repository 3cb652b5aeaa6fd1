"""Billing write paths: sources, imports (upload, command line, pull), allocation rules and unit volumes."""

import csv
import fnmatch
import glob
import hashlib
import io
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Service
from apps.core.exceptions import ApplicationError

from .formats import FORMATS
from .importer import billing_import_claim, billing_import_run
from .models import AllocationRule, BillingImport, BillingSource, SeenFile, UnitVolume
from .rollups import refresh_all

logger = logging.getLogger(__name__)

HASH_CHUNK = 1024 * 1024
PULL_BACKOFF_MINUTES = [1, 5, 15, 60]


class SourceUnavailable(Exception):
    """A source's folder or URL could not be read; the pull is retried with backoff."""


def _upload_dir(source: BillingSource) -> Path:
    folder = Path(settings.UPLOAD_DIR) / "billing" / str(source.pk)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _store(source: BillingSource, stream: IO[bytes], filename: str) -> tuple[Path, str, int]:
    """Copy a file into the upload folder, hashing it on the way; nothing is left behind on failure."""
    target = _upload_dir(source) / f"{uuid.uuid4().hex}-{Path(filename).name}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(target, "wb") as out:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ApplicationError(f"{filename}: the upload could not be stored ({exc.strerror})") from None
    return target, digest.hexdigest(), size


def _sha256(path: str | Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_format(fmt: str | None) -> str:
    if fmt and fmt != BillingSource.Format.AUTO and fmt not in FORMATS:
        raise ApplicationError(f"format {fmt!r} is not one of: auto, {', '.join(FORMATS)}")
    return "" if not fmt or fmt == BillingSource.Format.AUTO else fmt


@transaction.atomic
def billing_import_upload(
    *, source: BillingSource, stream: IO[bytes], filename: str, user=None, fmt: str | None = None
) -> BillingImport:
    """An admin's upload: stored, then imported by a worker (the page shows its progress)."""
    path, checksum, size = _store(source, stream, filename)
    billing_import = BillingImport.objects.create(
        source=source,
        filename=filename,
        stored_path=str(path),
        checksum=checksum,
        size=size,
        format=_check_format(fmt),
        trigger=BillingImport.Trigger.UPLOAD,
        started_by=user,
    )
    from .tasks import billing_import_task

    billing_import_task.delay_on_commit(billing_import.pk)
    return billing_import


def billing_import_path(
    *,
    source: BillingSource,
    path: str,
    fmt: str | None = None,
    user=None,
    trigger: str = BillingImport.Trigger.COMMAND,
    on_progress=None,
) -> BillingImport:
    """Import a file on disk now, in this process (the command line and the demo)."""
    try:
        checksum, size = _sha256(path)
    except OSError as exc:
        raise ApplicationError(f"{path}: cannot be read ({exc.strerror})") from None
    billing_import = BillingImport.objects.create(
        source=source,
        filename=os.path.basename(path),
        stored_path=os.path.abspath(path),
        checksum=checksum,
        size=size,
        format=_check_format(fmt),
        trigger=trigger,
        started_by=user,
    )
    claimed = billing_import_claim(import_id=billing_import.pk)
    return billing_import_run(billing_import=claimed, on_progress=on_progress)


def billing_import_execute(*, import_id: int) -> BillingImport | None:
    """The worker's side of an upload or pull: claim the import (a no-op if it already finished) and run it."""
    billing_import = billing_import_claim(import_id=import_id)
    if billing_import is None:
        return None
    return billing_import_run(billing_import=billing_import)


# --- Pulls ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    fingerprint: str
    size: int | None


def _local_candidates(location: str) -> list[Candidate]:
    pattern = os.path.join(location, "*") if os.path.isdir(location) else location
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths and not glob.has_magic(pattern) and not os.path.exists(location):
        raise SourceUnavailable(f"{location}: no such file or folder")
    candidates = []
    for path in paths:
        if fnmatch.fnmatch(os.path.basename(path), ".*"):
            continue
        checksum, size = _sha256(path)
        candidates.append(Candidate(path, checksum, size))
    return candidates


def _auth_headers(source: BillingSource) -> dict[str, str]:
    if not source.auth_env_var:
        return {}
    value = os.environ.get(source.auth_env_var)
    if value is None:
        raise SourceUnavailable(f"the environment variable {source.auth_env_var} named for authentication is not set")
    return {"Authorization": value}


def _download(source: BillingSource, seen: SeenFile | None) -> tuple[Candidate | None, Path | None]:
    """GET the URL (conditional on the last ETag); returns None when the server says it is unchanged."""
    import requests

    headers = _auth_headers(source)
    if seen is not None and seen.fingerprint.startswith("etag:"):
        headers["If-None-Match"] = seen.fingerprint.removeprefix("etag:")
    try:
        with requests.get(source.location, headers=headers, stream=True, timeout=(10, 120)) as response:
            if response.status_code == 304:
                return None, None
            if response.status_code != 200:
                raise SourceUnavailable(f"{source.location} answered HTTP {response.status_code}")
            # The length the server announced is of the bytes on the wire: store them as sent.
            expected = None if response.headers.get("Content-Encoding") else response.headers.get("Content-Length")
            name = Path(response.url.split("?")[0]).name or "download"
            path, checksum, size = _store(source, response.raw, name)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"{source.location}: {exc}") from None
    if expected is not None and int(expected) != size:
        path.unlink(missing_ok=True)
        raise SourceUnavailable(f"{source.location}: the download ended after {size} of {expected} bytes")
    etag = response.headers.get("ETag")
    return Candidate(source.location, f"etag:{etag}" if etag else checksum, size), path


def billing_source_pull(*, source: BillingSource) -> list[BillingImport]:
    """Find new or changed files at the source and queue an import for each. Raises SourceUnavailable."""
    if not source.location:
        return []
    queued: list[BillingImport] = []
    seen = {s.name: s for s in source.seen_files.all()}
    if source.location.startswith(("http://", "https://")):
        candidate, path = _download(source, seen.get(source.location))
        files = (
            [(candidate, path)]
            if candidate and (source.location not in seen or seen[source.location].fingerprint != candidate.fingerprint)
            else []
        )
        if candidate and not files and path:
            path.unlink(missing_ok=True)
    else:
        files = []
        for candidate in _local_candidates(source.location):
            if candidate.name in seen and seen[candidate.name].fingerprint == candidate.fingerprint:
                continue
            with open(candidate.name, "rb") as fh:
                path, _, _ = _store(source, fh, os.path.basename(candidate.name))
            files.append((candidate, path))
    from .tasks import billing_import_task

    for candidate, path in files:
        with transaction.atomic():
            billing_import = BillingImport.objects.create(
                source=source,
                filename=os.path.basename(candidate.name),
                stored_path=str(path),
                checksum=candidate.fingerprint.removeprefix("etag:")[:64],
                size=candidate.size,
                trigger=BillingImport.Trigger.SCHEDULE,
            )
            SeenFile.objects.update_or_create(
                source=source,
                name=candidate.name,
                defaults={"fingerprint": candidate.fingerprint, "size": candidate.size, "last_import": billing_import},
            )
            billing_import_task.delay_on_commit(billing_import.pk)
        queued.append(billing_import)
    return queued


def billing_source_record_pull(*, source: BillingSource, error: str | None) -> BillingSource:
    now = timezone.now()
    source.last_pulled_at = now
    if error is None:
        source.status, source.consecutive_failures, source.last_error = BillingSource.Status.OK, 0, ""
        source.next_pull_at = now + timedelta(minutes=source.pull_every_minutes)
    else:
        source.status = BillingSource.Status.FAILING
        source.consecutive_failures += 1
        source.last_error = error
        backoff = PULL_BACKOFF_MINUTES[min(source.consecutive_failures, len(PULL_BACKOFF_MINUTES)) - 1]
        source.next_pull_at = now + timedelta(minutes=min(backoff, source.pull_every_minutes))
    source.save(
        update_fields=["last_pulled_at", "status", "consecutive_failures", "last_error", "next_pull_at", "updated_at"]
    )
    return source


def billing_sources_due() -> list[int]:
    now = timezone.now()
    return list(
        BillingSource.objects.filter(enabled=True)
        .exclude(location="")
        .exclude(next_pull_at__gt=now)
        .values_list("pk", flat=True)
    )


# --- Allocation rules ----------------------------------------------------------------------------------------


def allocation_rules_changed() -> int:
    """Re-allocate every stored period after a rule was added, changed or removed."""
    with transaction.atomic():
        return refresh_all()


def allocation_rule_save(*, rule: AllocationRule) -> AllocationRule:
    with transaction.atomic():
        rule.full_clean()
        rule.save()
        refresh_all()
    return rule


# --- Units of service ----------------------------------------------------------------------------------------

UNIT_COLUMNS = ("service", "date", "units")


@dataclass
class UnitImportResult:
    rows: int
    created: int
    updated: int


def unit_volumes_import_csv(*, stream: IO[bytes], filename: str, source: str = "import") -> UnitImportResult:
    """CSV ``service,date,units`` (units in the service's unit of delivery); all rows valid or nothing is written."""
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        header = [c.strip() for c in reader.fieldnames or []]
    except UnicodeDecodeError:
        raise ApplicationError(f"{filename}: is not UTF-8 text (expected a UTF-8 CSV file)") from None
    missing = [c for c in UNIT_COLUMNS if c not in header]
    if missing:
        raise ApplicationError(
            f"{filename} row 1: missing column(s) {', '.join(missing)} (expected the header service,date,units)"
        )
    services = dict(Service.objects.values_list("slug", "pk"))
    parsed: dict[tuple[int, date], Decimal] = {}
    errors: list[str] = []
    try:
        for number, record in enumerate(reader, start=2):
            record = {k.strip(): (v or "").strip() for k, v in record.items() if k}
            errors += _unit_row_errors(filename, number, record, services, parsed)
            if len(errors) >= 20:
                break
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ApplicationError(f"{filename}: cannot be read as CSV ({exc})") from None
    if errors:
        raise ApplicationError("; ".join(errors))
    if not parsed:
        raise ApplicationError(f"{filename}: no data rows (expected at least one row after the header)")
    return unit_volumes_store(volumes=parsed, source=source)


def _unit_row_errors(filename, number, record, services, parsed) -> list[str]:
    where = f"{filename} row {number}"
    errors = []
    service_id = services.get(record["service"])
    if service_id is None:
        errors.append(f"{where}, column service: {record['service']!r} is not a known service slug")
    try:
        day = date.fromisoformat(record["date"])
    except ValueError:
        errors.append(f"{where}, column date: {record['date']!r} is not a date (expected YYYY-MM-DD)")
        day = None
    try:
        units = Decimal(record["units"])
        if not units.is_finite() or units < 0:
            raise InvalidOperation
    except InvalidOperation:
        errors.append(f"{where}, column units: {record['units']!r} is not a number >= 0")
        units = None
    if not errors:
        parsed[(service_id, day)] = units
    return errors


@transaction.atomic
def unit_volumes_store(*, volumes: dict[tuple[int, date], Decimal], source: str) -> UnitImportResult:
    existing = {
        (v.service_id, v.day): v
        for v in UnitVolume.objects.filter(
            source=source, service_id__in={k[0] for k in volumes}, day__in={k[1] for k in volumes}
        )
    }
    created, updated = [], []
    for (service_id, day), units in volumes.items():
        if (service_id, day) in existing:
            row = existing[(service_id, day)]
            if row.units != units:
                row.units = units
                updated.append(row)
        else:
            created.append(UnitVolume(service_id=service_id, day=day, units=units, source=source))
    UnitVolume.objects.bulk_create(created, batch_size=1000)
    UnitVolume.objects.bulk_update(updated, ["units"], batch_size=1000)
    return UnitImportResult(rows=len(volumes), created=len(created), updated=len(updated))


def billing_source_uploads_cleanup(*, source: BillingSource) -> None:
    shutil.rmtree(_upload_dir(source), ignore_errors=True)
