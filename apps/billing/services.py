"""Billing write paths: sources, imports (upload, command line, pull), allocation rules and unit volumes."""

import csv
import fnmatch
import glob
import gzip
import hashlib
import io
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from apps.catalog.models import Service
from apps.core import netguard
from apps.core.exceptions import ApplicationError, QueueUnavailable
from apps.core.uploads import storage_error_message

from .formats import FORMATS
from .importer import billing_import_claim, billing_import_run
from .models import AllocationRule, BillingImport, BillingLineItem, BillingSource, Reallocation, SeenFile, UnitVolume
from .rollups import refresh_periods

logger = logging.getLogger(__name__)

HASH_CHUNK = 1024 * 1024
PULL_BACKOFF_MINUTES = [1, 5, 15, 60]


class SourceUnavailable(Exception):
    """A source's folder or URL could not be read; the pull is retried with backoff."""


def _upload_dir(source: BillingSource) -> Path:
    folder = Path(settings.UPLOAD_DIR) / "billing" / str(source.pk)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _ReadFailed(Exception):
    """Reading the incoming stream failed (not writing it): the caller reports the original error."""


def _read_chunks(stream: IO[bytes]):
    while True:
        try:
            chunk = stream.read(HASH_CHUNK)
        except Exception as exc:
            raise _ReadFailed() from exc
        if not chunk:
            return
        yield chunk


def _store(source: BillingSource, stream: IO[bytes], filename: str) -> tuple[Path, str, int]:
    """Copy a file into the upload folder, hashing it on the way; nothing is left behind on failure.

    A failed write (disk full, file too large, I/O error) raises ApplicationError("could not store the upload
    ...: no space left on device ..."); a failed read re-raises the reader's own error."""
    target = None
    digest, size = hashlib.sha256(), 0
    try:
        target = _upload_dir(source) / f"{uuid.uuid4().hex}-{Path(filename).name}"
        with open(target, "wb") as out:
            for chunk in _read_chunks(stream):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # a delayed write error shows here, not later in the import
    except _ReadFailed as exc:
        if target is not None:
            target.unlink(missing_ok=True)
        raise exc.__cause__ from None
    except OSError as exc:
        if target is not None:
            target.unlink(missing_ok=True)
        raise ApplicationError(storage_error_message(exc, Path(filename).name)) from None
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

    def queue() -> None:
        try:
            billing_import_task.delay(billing_import.pk)
        except BrokerUnavailable as exc:  # still unreachable after the publish retries (settings)
            error = f"{filename}: stored, but the import could not be queued: the task broker is unreachable ({exc})"
            BillingImport.objects.filter(pk=billing_import.pk, status=BillingImport.Status.QUEUED).update(
                status=BillingImport.Status.FAILED, error=error, finished_at=timezone.now()
            )
            raise QueueUnavailable(f"{error}. Upload the file again once it is back.") from None

    transaction.on_commit(queue)
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
    """Import a file on disk now, in this process (the command line and the demo).

    The file's checksum is computed while it is imported (hashing a large file takes seconds of its own)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ApplicationError(f"{path}: cannot be read ({exc.strerror})") from None
    billing_import = BillingImport.objects.create(
        source=source,
        filename=os.path.basename(path),
        stored_path=os.path.abspath(path),
        size=size,
        format=_check_format(fmt),
        trigger=trigger,
        started_by=user,
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-checksum") as pool:
        hashing = pool.submit(_sha256, path)
        claimed = billing_import_claim(import_id=billing_import.pk)
        finished = billing_import_run(billing_import=claimed, on_progress=on_progress)
        try:
            finished.checksum = hashing.result()[0]
        except OSError as exc:
            logger.warning("billing import %s: no checksum (%s)", finished.pk, exc)
        else:
            BillingImport.objects.filter(pk=finished.pk).update(checksum=finished.checksum)
    return finished


def billing_import_execute(*, import_id: int) -> BillingImport | None:
    """The worker's side of an upload or pull: claim the import (a no-op if it already finished) and run it."""
    billing_import = billing_import_claim(import_id=import_id)
    if billing_import is None:
        return None
    return billing_import_run(billing_import=billing_import)


def billing_import_give_up(*, import_id: int, error: str) -> None:
    """Record an import the worker stopped retrying as failed, with why; a finished import is left as it is."""
    close_old_connections()  # the connection that failed is not reused
    try:
        BillingImport.objects.filter(
            pk=import_id, status__in=[BillingImport.Status.QUEUED, BillingImport.Status.RUNNING]
        ).update(status=BillingImport.Status.FAILED, error=error[:2000], finished_at=timezone.now())
    except DatabaseError:  # still unreachable: the import stays "running" and the log has the error
        logger.exception("billing import %s could not be marked as failed", import_id)


# --- Pulls ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    fingerprint: str
    size: int | None


def _local_candidates(location: str) -> list[Candidate]:
    from .forms import inside, local_path_problem

    if problem := local_path_problem(location):  # the allowed folders may have changed since it was saved
        raise SourceUnavailable(problem)
    roots = [os.path.realpath(root) for root in settings.BILLING_LOCAL_ROOTS]
    pattern = os.path.join(location, "*") if os.path.isdir(location) else location
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths and not glob.has_magic(pattern) and not os.path.exists(location):
        raise SourceUnavailable(f"{location}: no such file or folder")
    candidates = []
    for path in paths:
        if fnmatch.fnmatch(os.path.basename(path), ".*"):
            continue
        if not any(inside(path, root) for root in roots):
            raise SourceUnavailable(
                f"{path} leads outside the folders billing exports may be read from (a symbolic link?); "
                "nothing was imported"
            )
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


def _gzip_problem(path: Path) -> str | None:
    """Why a gzip file cannot be read to its end (cut short or damaged), or None; other files pass."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return None
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(HASH_CHUNK):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        return f"the download is a gzip file that is cut short or damaged ({exc}); nothing was imported"
    return None


def _download(source: BillingSource, seen: SeenFile | None) -> tuple[Candidate | None, Path | None]:
    """GET the URL (conditional on the last ETag); returns None when the server says it is unchanged.

    The connection goes through the outbound guard (apps.core.netguard): a URL resolving to a refused address
    is never connected to, redirects included. A download that stalls, ends early or is a truncated gzip file
    is refused whole (SourceUnavailable) and leaves no file behind."""
    import requests
    from urllib3.exceptions import HTTPError as TransportError
    from urllib3.exceptions import IncompleteRead, ReadTimeoutError

    headers = _auth_headers(source)
    if seen is not None and seen.fingerprint.startswith("etag:"):
        headers["If-None-Match"] = seen.fingerprint.removeprefix("etag:")
    location = source.location
    wait = settings.BILLING_DOWNLOAD_TIMEOUT
    try:
        with (
            netguard.session() as http,
            http.get(location, headers=headers, stream=True, timeout=(netguard.connect_timeout(), wait)) as response,
        ):
            if response.status_code == 304:
                return None, None
            if response.status_code != 200:
                raise SourceUnavailable(f"{location} answered HTTP {response.status_code}")
            # The length the server announced is of the bytes on the wire: store them as sent.
            expected = None if response.headers.get("Content-Encoding") else response.headers.get("Content-Length")
            name = Path(response.url.split("?")[0]).name or "download"
            path, checksum, size = _store(source, response.raw, name)
    except netguard.OutboundRefused as exc:
        raise SourceUnavailable(f"{location}: {exc}") from None
    except (requests.Timeout, ReadTimeoutError):
        raise SourceUnavailable(
            f"{location}: no answer for {wait:g} s (OPSPORTAL_BILLING_DOWNLOAD_TIMEOUT); nothing was imported"
        ) from None
    except (requests.RequestException, TransportError) as exc:
        short = next((a for a in exc.args if isinstance(a, IncompleteRead)), None)
        what = f"the download was cut short ({short})" if short else f"the download failed ({exc})"
        raise SourceUnavailable(f"{location}: {what}; nothing was imported") from None
    except ApplicationError as exc:  # the upload folder could not take the file
        raise SourceUnavailable(f"{location}: {exc}") from None
    if expected is not None and int(expected) != size:
        path.unlink(missing_ok=True)
        raise SourceUnavailable(
            f"{location}: the download ended after {size} of {expected} bytes; nothing was imported"
        )
    if problem := _gzip_problem(path):
        path.unlink(missing_ok=True)
        raise SourceUnavailable(f"{location}: {problem}")
    etag = response.headers.get("ETag")
    return Candidate(location, f"etag:{etag}" if etag else checksum, size), path


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
            try:
                with open(candidate.name, "rb") as fh:
                    path, _, _ = _store(source, fh, os.path.basename(candidate.name))
            except ApplicationError as exc:  # the upload folder could not take the copy
                raise SourceUnavailable(str(exc)) from None
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


def allocation_rules_changed(*, reason: str, user=None, queue: bool = True) -> Reallocation:
    """Have a worker re-allocate every stored period after the rules changed (in the caller's transaction;
    the task is sent once it commits). A re-allocation still waiting for a worker takes the change in: it
    reads the rules as they are when it starts. ``queue=False``: no task; the caller runs it
    (``reallocations_run_pending``)."""
    from .tasks import reallocate_task

    with transaction.atomic():
        # Locked: a worker claiming it now waits until this change has committed, then reads it.
        waiting = Reallocation.objects.select_for_update().filter(status=Reallocation.Status.QUEUED).first()
        if waiting is not None:
            Reallocation.objects.filter(pk=waiting.pk).update(changes=F("changes") + 1)
            waiting.refresh_from_db()
            return waiting
        reallocation = Reallocation.objects.create(reason=reason[:300], requested_by=user)
    if not queue:
        return reallocation

    def send() -> None:
        try:
            reallocate_task.delay(reallocation.pk)
        except BrokerUnavailable as exc:  # the rules stand; the page offers to re-allocate again
            logger.warning("re-allocation %s could not be queued: %s", reallocation.pk, exc)
            Reallocation.objects.filter(pk=reallocation.pk, status=Reallocation.Status.QUEUED).update(
                status=Reallocation.Status.FAILED,
                error=f"could not be queued: the task broker is unreachable ({exc}); re-allocate again once it "
                "is back, or run `manage.py reallocate_billing`",
                finished_at=timezone.now(),
            )

    transaction.on_commit(send)
    return reallocation


def allocation_rule_save(*, rule: AllocationRule, user=None) -> AllocationRule:
    """Save a rule; a worker then re-allocates every stored period (``allocation_rules_changed``)."""
    with transaction.atomic():
        created = rule.pk is None
        rule.full_clean()
        rule.save()
        allocation_rules_changed(reason=f"rule {rule.name} {'added' if created else 'changed'}", user=user)
    return rule


def allocation_rule_delete(*, rule: AllocationRule, user=None) -> None:
    """Remove a rule; a worker then re-allocates what it claimed."""
    with transaction.atomic():
        name = rule.name
        rule.delete()
        allocation_rules_changed(reason=f"rule {name} deleted", user=user)


def _periods() -> list[tuple[int, datetime]]:
    """Every stored (source, billing period), in order."""
    pairs = BillingLineItem.objects.values_list("source_id", "billing_period_start").distinct()
    return sorted(pairs)


def reallocation_run(
    *, reallocation_id: int, on_progress: Callable[[int, int], None] | None = None
) -> Reallocation | None:
    """Re-allocate and roll up every stored period: each (source, period) in a transaction of its own, under
    the source's lock (an import of that source waits, or is waited for). None when it had finished already
    (a duplicate task). A retried run (a killed worker) starts again from the first period: each period's
    re-allocation is whole and repeatable."""
    claimed = Reallocation.objects.filter(
        pk=reallocation_id, status__in=[Reallocation.Status.QUEUED, Reallocation.Status.RUNNING]
    ).update(status=Reallocation.Status.RUNNING, started_at=timezone.now(), periods_done=0, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    with transaction.atomic():
        # Imports in flight may have read the rules before they changed: wait until they have committed, so
        # that their periods are listed too (an import that starts later reads the changed rules).
        list(BillingSource.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        pairs = _periods()
    Reallocation.objects.filter(pk=reallocation_id).update(periods_total=len(pairs))
    if on_progress:
        on_progress(0, len(pairs))
    try:
        for done, (source_id, start) in enumerate(pairs, 1):
            with transaction.atomic():
                BillingSource.objects.select_for_update().filter(pk=source_id).first()
                refresh_periods(source_id=source_id, period_starts=[start])
            Reallocation.objects.filter(pk=reallocation_id).update(periods_done=done)
            if on_progress:
                on_progress(done, len(pairs))
    except (OperationalError, InterfaceError):  # the database went away: the task retries
        raise
    except Exception as exc:
        logger.exception("re-allocation %s failed", reallocation_id)
        reallocation_give_up(reallocation_id=reallocation_id, error=f"{type(exc).__name__}: {exc}")
        raise
    Reallocation.objects.filter(pk=reallocation_id).update(
        status=Reallocation.Status.SUCCEEDED, finished_at=timezone.now(), error=""
    )
    return Reallocation.objects.get(pk=reallocation_id)


def reallocation_give_up(*, reallocation_id: int, error: str) -> None:
    """Record a re-allocation as failed: the periods it finished keep the new allocation, the others the
    earlier one (each period is whole either way)."""
    Reallocation.objects.filter(pk=reallocation_id).update(
        status=Reallocation.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def reallocations_run_pending(*, on_progress: Callable[[int, int], None] | None = None) -> list[Reallocation]:
    """Run the waiting re-allocations here, oldest first (the command line, the demo)."""
    finished = []
    waiting = Reallocation.objects.filter(status=Reallocation.Status.QUEUED).order_by("created_at", "pk")
    for pk in list(waiting.values_list("pk", flat=True)):
        done = reallocation_run(reallocation_id=pk, on_progress=on_progress)
        if done is not None:
            finished.append(done)
    return finished


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
