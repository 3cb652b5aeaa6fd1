"""Writes of the adoption area: event ingestion (API and CSV), daily rollups, NPS, targets."""

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.roles import Role
from apps.catalog.models import Product
from apps.core.exceptions import ApplicationError
from apps.kpis.models import Target
from apps.kpis.registry import Direction

from .metrics import METRICS, SESSION_IDLE_SECONDS
from .models import (
    TRIAL_EVENTS,
    Event,
    EventName,
    NpsCampaign,
    NpsResponse,
    RollupMark,
    RollupState,
    TrialEvent,
    UserDay,
    day_number,
    month_number,
)
from .validation import BACKFILL_AFTER, MAX_BATCH, MAX_FUTURE, EventError, ValidEvent, parse_timestamp, validate_events

INSERT_CHUNK = 1_000
CSV_MAX_ROWS = 200_000
CSV_COLUMNS = ("event_id", "product", "user_id", "event", "timestamp", "location", "role", "rating", "properties")
CSV_REQUIRED = ("product", "user_id", "event", "timestamp")
# A CSV row without an event_id gets one derived from its content, so importing a file twice is harmless.
CSV_EVENT_NAMESPACE = uuid.UUID("6f1d4c3e-9a7b-4f6e-8d2c-1b5a0e7f3c21")


# --- Ingestion ------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


_EVENT_COLUMNS = (
    "event_id",
    "product",
    "user_id",
    "name",
    "timestamp",
    "day",
    "location",
    "region",
    "role",
    "rating",
    "properties",
    "received_at",
    "source",
    "backfill",
)


def _copy_text(value: str) -> str:
    """A value in PostgreSQL's COPY text format (backslash escapes)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _insert_events_postgresql(cursor, events: Sequence[ValidEvent], *, received_at: datetime, source: str) -> set[str]:
    """COPY the batch into a per-connection temporary table, then insert from it.

    Half the database CPU of a 1,000-row ``INSERT ... VALUES`` (measured with bench/events.py): COPY
    skips parsing and planning a statement with 14,000 literals.
    """
    qn = connection.ops.quote_name
    columns = ", ".join(qn(Event._meta.get_field(name).column) for name in _EVENT_COLUMNS)
    backfill_before = received_at - BACKFILL_AFTER
    received = received_at.isoformat()
    lines = []
    for e in events:
        lines.append(
            "\t".join(
                (
                    e.event_id,
                    str(e.product_id),
                    _copy_text(e.user_id),
                    _copy_text(e.name),
                    e.timestamp.isoformat(),
                    e.day.isoformat(),
                    "\\N" if e.location_id is None else str(e.location_id),
                    "\\N" if e.region_id is None else str(e.region_id),
                    _copy_text(e.role),
                    "\\N" if e.rating is None else str(e.rating),
                    _copy_text(e.properties_json),
                    received,
                    source,
                    "t" if e.timestamp < backfill_before else "f",
                )
            )
        )
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS adoption_event_in ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM {qn(Event._meta.db_table)} WITH NO DATA"
    )
    cursor.copy_expert(f"COPY adoption_event_in ({columns}) FROM STDIN", io.StringIO("\n".join(lines) + "\n"))
    cursor.execute(
        f"INSERT INTO {qn(Event._meta.db_table)} ({columns}) SELECT {columns} FROM adoption_event_in "
        f"ON CONFLICT ({qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}::text"
    )
    stored = {row[0].replace("-", "") for row in cursor.fetchall()}
    cursor.execute("TRUNCATE adoption_event_in")  # a second batch in the same transaction starts empty
    return stored


def _insert_events_sqlite(cursor, events: Sequence[ValidEvent], *, received_at: datetime, source: str) -> set[str]:
    """One ``INSERT ... VALUES`` per 1,000 rows, with the values Django's fields would store (UUIDs as 32
    hex digits, datetimes as naive UTC text)."""
    qn = connection.ops.quote_name
    columns = ", ".join(qn(Event._meta.get_field(name).column) for name in _EVENT_COLUMNS)
    row_sql = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    backfill_before = received_at - BACKFILL_AFTER

    def naive_utc(dt: datetime) -> str:
        return str(dt.astimezone(UTC).replace(tzinfo=None))

    received = naive_utc(received_at)
    stored: set[str] = set()
    for start in range(0, len(events), INSERT_CHUNK):
        chunk = events[start : start + INSERT_CHUNK]
        params: list[Any] = []
        for e in chunk:
            params += [
                e.event_id.replace("-", ""),
                e.product_id,
                e.user_id,
                e.name,
                naive_utc(e.timestamp),
                e.day.isoformat(),
                e.location_id,
                e.region_id,
                e.role,
                e.rating,
                e.properties_json,
                received,
                source,
                e.timestamp < backfill_before,
            ]
        cursor.execute(
            f"INSERT INTO {qn(Event._meta.db_table)} ({columns}) VALUES {', '.join([row_sql] * len(chunk))} "
            f"ON CONFLICT ({qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}",
            params,
        )
        stored.update(row[0] for row in cursor.fetchall())
    return stored


def _insert_events(events: Sequence[ValidEvent], *, received_at: datetime, source: str) -> set[str]:
    """Store the events unless their id is already stored; returns the ids stored (32 hex digits).

    ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: the unique constraint decides,
    not a look-up before the insert, so concurrent retries of one batch store each event once, and
    RETURNING tells accepted from duplicate ids (bulk_create cannot). Runs on the driver's cursor: a
    1,000-row statement is not worth formatting into the debug query log.
    """
    insert = _insert_events_postgresql if connection.vendor == "postgresql" else _insert_events_sqlite
    with connection.cursor() as wrapper:
        return insert(wrapper.cursor, events, received_at=received_at, source=source)


def _mark_dirty(pairs: Iterable[tuple[int, date]], *, now: datetime) -> None:
    """Mark product-days for a rollup refresh. Sorted, so concurrent batches lock rows in one order."""
    token = uuid.uuid4()
    marks = [RollupMark(product_id=p, day=d, token=token, marked_at=now) for p, d in sorted(set(pairs))]
    if marks:
        RollupMark.objects.bulk_create(
            marks, update_conflicts=True, unique_fields=["product", "day"], update_fields=["token", "marked_at"]
        )


def _store(events: list[ValidEvent], *, now: datetime, source: str, schedule_refresh: bool) -> IngestResult:
    unique: dict[str, ValidEvent] = {}
    for e in events:
        unique.setdefault(e.event_id, e)
    with transaction.atomic():
        stored = _insert_events(list(unique.values()), received_at=now, source=source)
        touched = {(e.product_id, e.day) for e in unique.values() if e.event_id.replace("-", "") in stored}
        _mark_dirty(touched, now=now)
        if schedule_refresh:
            from .tasks import refresh_rollups_task

            for product_id in sorted({p for p, _ in touched}):
                refresh_rollups_task.delay_on_commit(product_id)
    duplicate_ids = [i for i in unique if i.replace("-", "") not in stored]
    # Repeats inside the batch are duplicates too: each id is stored at most once.
    repeats = len(events) - len(unique)
    return IngestResult(accepted=len(stored), duplicates=len(duplicate_ids) + repeats, duplicate_ids=duplicate_ids)


def events_ingest(
    records: Sequence[Any], *, now: datetime | None = None, schedule_refresh: bool = True
) -> IngestResult:
    """Validate and store one API batch, all or nothing: with any invalid event nothing is stored.

    Duplicate event ids (already stored, or repeated in the batch) are not errors: they are counted
    and skipped, so a client may retry a batch safely.
    """
    now = now or timezone.now()
    if len(records) > MAX_BATCH:
        raise ApplicationError(f"a batch holds at most {MAX_BATCH:,} events; this one has {len(records):,}")
    valid, errors = validate_events(records, now=now)
    if errors:
        return IngestResult(errors=errors)
    return _store(valid, now=now, source=Event.Source.API, schedule_refresh=schedule_refresh)


def _csv_record(row: dict[str, str], *, line: int) -> tuple[dict[str, Any], list[EventError]]:
    props: dict[str, Any] = {}
    errors: list[EventError] = []
    raw_props = (row.get("properties") or "").strip()
    if raw_props:
        try:
            props = json.loads(raw_props)
        except json.JSONDecodeError as exc:
            errors.append(EventError(line, "properties", f"is not valid JSON ({exc.msg} at character {exc.pos})"))
        else:
            if not isinstance(props, dict):
                errors.append(EventError(line, "properties", 'must be a JSON object such as {"shift": "early"}'))
                props = {}
    for column in ("location", "role"):
        if (row.get(column) or "").strip():
            props[column] = row[column].strip()
    rating = (row.get("rating") or "").strip()
    if rating:
        props["rating"] = int(rating) if rating.isdigit() else rating
    record: dict[str, Any] = {
        "product": (row.get("product") or "").strip(),
        "user_id": (row.get("user_id") or "").strip(),
        "event": (row.get("event") or "").strip(),
        "timestamp": (row.get("timestamp") or "").strip(),
        "properties": props,
    }
    event_id = (row.get("event_id") or "").strip()
    if not event_id:
        # Derived from what identifies the event, so the same row imported twice gets the same id.
        try:
            ts = parse_timestamp(record["timestamp"]).isoformat()
        except ValueError:
            ts = record["timestamp"]
        key = "|".join([record["product"], record["user_id"], record["event"], ts])
        event_id = str(uuid.uuid5(CSV_EVENT_NAMESPACE, key))
    record["event_id"] = event_id
    return record, errors


def _csv_rows(reader: csv.DictReader, filename: str):
    """The reader's rows; a row the csv module cannot read (e.g. a field over its size limit) refuses the file."""
    line = 1
    while True:
        line += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ApplicationError(f"{filename}: row {line} is not a valid CSV row ({exc})") from None
        yield row


def events_import_csv(
    data: bytes, *, actor, filename: str = "upload.csv", now: datetime | None = None, schedule_refresh: bool = True
) -> IngestResult:
    """Import events from a CSV file with the API's rules; the whole file or nothing.

    Columns: product, user_id, event, timestamp (required); event_id, location, role, rating and
    properties (a JSON object) optional. A product manager may import only events of products they
    own. Errors name the file, row (the header is row 1), column and value.
    """
    now = now or timezone.now()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"{filename}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#x})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ApplicationError(f"{filename}: row 1 is not a valid CSV row ({exc})") from None
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ApplicationError(
            f"{filename}: the header row lacks column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"
        )
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ApplicationError(f"{filename}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(CSV_COLUMNS)}")
    reader.fieldnames = header
    records, lines, errors = [], [], []
    for line, row in enumerate(_csv_rows(reader, filename), start=2):
        if len(records) >= CSV_MAX_ROWS:
            raise ApplicationError(f"{filename}: more than {CSV_MAX_ROWS:,} rows; split the file")
        if None in row:
            errors.append(
                EventError(line, "", f"has {len(header) + len(row[None])} fields; the header has {len(header)}")
            )
            continue
        record, row_errors = _csv_record(row, line=line)
        errors += row_errors
        records.append(record)
        lines.append(line)
    if not records and not errors:
        raise ApplicationError(f"{filename}: no rows after the header")
    valid, invalid = validate_events(records, now=now)
    errors += [EventError(lines[e.index], e.field, e.message, e.event_id) for e in invalid]
    if actor.role_enum != Role.ADMIN:
        owned = set(Product.objects.owned_by(actor).values_list("slug", flat=True))
        for rec, line in zip(records, lines, strict=True):
            if rec["product"] and rec["product"] not in owned:
                errors.append(EventError(line, "product", f"{rec['product']!r} is not one of your products"))
    if errors:
        errors.sort(key=lambda e: e.index)
        return IngestResult(errors=errors)
    return _store(valid, now=now, source=Event.Source.CSV, schedule_refresh=schedule_refresh)


def format_error(error: EventError, *, filename: str | None = None) -> str:
    """One error as a sentence: "events[3].timestamp: ..." for the API, "file.csv, row 4, column x: ..."."""
    if filename is not None:
        column = f", column {error.field.removeprefix('properties.')}" if error.field else ""
        return f"{filename}, row {error.index}{column}: {error.message}"
    where = f"events[{error.index}]" + (f".{error.field}" if error.field else "")
    return f"{where}: {error.message}"


# --- Daily rollups --------------------------------------------------------------------------------


def _seconds_between_ms_sql(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000"
    return f"(julianday({later}) - julianday({earlier})) * 86400000.0"


def _rebuild_days(product_id: int, days: list[date], usage_names: list[str]) -> None:
    """Recompute the UserDay and TrialEvent rows of one product for ``days`` from its events, in SQL."""
    qn = connection.ops.quote_name
    ev, ud = qn(Event._meta.db_table), qn(UserDay._meta.db_table)
    usage_sql = f"{qn('name')} IN ({', '.join(['%s'] * len(usage_names))})" if usage_names else "1 = 0"
    gap = _seconds_between_ms_sql("ts", "prev_ts")
    idle_ms = SESSION_IDLE_SECONDS * 1000
    insert_sql = f"""
        INSERT INTO {ud} (product_id, {qn("day")}, day_number, month_number, user_id, location_id, region_id,
            {qn("role")}, events, usage_events, sessions, trial_requests, trial_starts, second_trial_requests,
            demos, trainings, ratings, rating_sum)
        SELECT product_id, {qn("day")}, %s, %s, user_id, location_id, region_id, {qn("role")},
            COUNT(*),
            SUM(is_usage),
            SUM(CASE WHEN is_usage = 1 AND (prev_ts IS NULL OR ROUND({gap}) > {idle_ms}) THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s AND rating IS NOT NULL THEN 1 ELSE 0 END),
            SUM(CASE WHEN {qn("name")} = %s AND rating IS NOT NULL THEN rating ELSE 0 END)
        FROM (
            SELECT e.*, LAG(ts) OVER (
                PARTITION BY user_id, location_id, region_id, {qn("role")}, is_usage ORDER BY ts
            ) AS prev_ts
            FROM (
                SELECT product_id, {qn("day")}, user_id, location_id, region_id, {qn("role")}, {qn("name")}, rating,
                    {qn("timestamp")} AS ts, CASE WHEN {usage_sql} THEN 1 ELSE 0 END AS is_usage
                FROM {ev} WHERE product_id = %s AND {qn("day")} = %s
            ) AS e
        ) AS w
        GROUP BY product_id, {qn("day")}, user_id, location_id, region_id, {qn("role")}
    """
    names = [
        EventName.TRIAL_REQUESTED,
        EventName.TRIAL_STARTED,
        EventName.SECOND_TRIAL_REQUESTED,
        EventName.DEMO_ATTENDED,
        EventName.TRAINING_COMPLETED,
        EventName.RATING_SUBMITTED,
        EventName.RATING_SUBMITTED,
    ]
    te = qn(TrialEvent._meta.db_table)
    trial_columns = (
        f"product_id, {qn('day')}, user_id, {qn('name')}, {qn('timestamp')}, location_id, region_id, {qn('role')}"
    )
    trial_sql = (
        f"INSERT INTO {te} ({trial_columns}) SELECT {trial_columns} FROM {ev} "
        f"WHERE product_id = %s AND {qn('day')} = %s AND {qn('name')} IN (%s, %s, %s)"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(days), 500):
            chunk = days[start : start + 500]
            params = [product_id, *(connection.ops.adapt_datefield_value(d) for d in chunk)]
            in_days = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {ud} WHERE product_id = %s AND {qn('day')} IN ({in_days})", params)
            cursor.execute(f"DELETE FROM {te} WHERE product_id = %s AND {qn('day')} IN ({in_days})", params)
        for day in days:
            cursor.execute(trial_sql, [product_id, connection.ops.adapt_datefield_value(day), *TRIAL_EVENTS])
            cursor.execute(
                insert_sql,
                [
                    day_number(day),
                    month_number(day),
                    *names,
                    *usage_names,
                    product_id,
                    connection.ops.adapt_datefield_value(day),
                ],
            )


def rollups_refresh(*, product_id: int, now: datetime | None = None) -> int:
    """Bring one product's daily rollup up to date; returns the number of days rebuilt.

    Refreshes of one product run one at a time (a row lock on the product that does not block event
    inserts). A mark is cleared only if no newer batch re-marked its day meanwhile, so nothing that
    arrived during the refresh is missed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        product = Product.objects.select_for_update(no_key=connection.vendor == "postgresql").get(pk=product_id)
        usage = sorted(set(product.usage_event_names or []))
        state, _ = RollupState.objects.get_or_create(product=product)
        if state.usage_event_names != usage:
            # What counts as usage changed: every day with events is out of date.
            days_with_events = Event.objects.filter(product=product).values_list("day", flat=True).distinct()
            _mark_dirty(((product.pk, d) for d in days_with_events), now=now)
            state.usage_event_names = usage
        marks = list(RollupMark.objects.filter(product=product).values_list("pk", "day", "token"))
        days = sorted({day for _, day, _ in marks})
        if days:
            _rebuild_days(product.pk, days, usage)
            for start in range(0, len(marks), 200):
                chunk = marks[start : start + 200]
                RollupMark.objects.filter(reduce(or_, (Q(pk=pk, token=token) for pk, _, token in chunk))).delete()
        state.refreshed_at = now
        state.save()
    return len(days)


def rollups_refresh_all(*, now: datetime | None = None) -> int:
    """Refresh every product with pending marks (or changed usage events); the periodic safety net."""
    return sum(rollups_refresh(product_id=pk, now=now) for pk in Product.objects.values_list("pk", flat=True))


# --- NPS ------------------------------------------------------------------------------------------


def _require_product_editor(actor, product: Product | None) -> None:
    """Object-level rule: admins edit everything, a product manager only the products they own."""
    if product is None:
        if not actor.is_portal_admin:
            raise PermissionDenied("Only an admin may set organisation-wide targets.")
    elif not product.editable_by(actor):
        raise PermissionDenied(f"You do not own {product.name}; only its product manager or an admin may change it.")


def nps_campaign_create(
    *, actor, product: Product, name: str, opens_on: date, closes_on: date | None = None, question: str = ""
) -> NpsCampaign:
    _require_product_editor(actor, product)
    if closes_on is not None and closes_on < opens_on:
        raise ApplicationError(f"the campaign closes ({closes_on}) before it opens ({opens_on})")
    base = slugify(f"{product.slug}-{name}")[:70] or product.slug
    slug, n = base, 1
    while NpsCampaign.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return NpsCampaign.objects.create(
        product=product,
        slug=slug,
        name=name.strip(),
        question=question.strip(),
        opens_on=opens_on,
        closes_on=closes_on,
        created_by=actor,
    )


def _check_score(score: Any) -> int:
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise ApplicationError(f"the score must be a whole number from 0 to 10, got {score!r}")
    return score


def nps_response_submit(
    *,
    campaign: NpsCampaign,
    respondent: str,
    score: int,
    comment: str = "",
    source: str = NpsResponse.Source.SURVEY,
    submitted_at: datetime | None = None,
) -> NpsResponse:
    """Record one answer; an employee answers a campaign once (the unique constraint decides)."""
    submitted_at = submitted_at or timezone.now()
    score = _check_score(score)
    if not campaign.is_open_on(submitted_at.date()):
        raise ApplicationError(f"the campaign “{campaign.name}” is not open on {submitted_at:%Y-%m-%d}")
    try:
        with transaction.atomic():
            return NpsResponse.objects.create(
                campaign=campaign,
                product_id=campaign.product_id,
                respondent=respondent,
                score=score,
                comment=comment.strip(),
                submitted_at=submitted_at,
                source=source,
            )
    except IntegrityError:
        raise ApplicationError(f"{respondent} has already answered “{campaign.name}”") from None


@dataclass
class NpsIngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[EventError] = field(default_factory=list)


def nps_responses_ingest(records: Sequence[Any], *, now: datetime | None = None) -> NpsIngestResult:
    """API responses ``{"campaign", "user_id", "score", "comment"?, "submitted_at"?}``, all or nothing.

    A second answer by the same person to the same campaign is a duplicate: counted, not stored (the
    first answer stands).
    """
    now = now or timezone.now()
    if len(records) > MAX_BATCH:
        raise ApplicationError(f"at most {MAX_BATCH:,} responses per call; this one has {len(records):,}")
    slugs = {
        r["campaign"]
        for r in records
        if isinstance(r, dict) and isinstance(r.get("campaign"), str) and "\x00" not in r["campaign"]
    }
    campaigns = {c.slug: c for c in NpsCampaign.objects.filter(slug__in=slugs).select_related("product")}
    allowed = {"campaign", "user_id", "score", "comment", "submitted_at"}
    rows: dict[tuple[int, str], NpsResponse] = {}
    errors: list[EventError] = []
    repeats = 0
    for index, r in enumerate(records):
        if not isinstance(r, dict):
            errors.append(EventError(index, "", f"expected a JSON object, got {type(r).__name__}"))
            continue
        problems = []
        if unknown := sorted(set(r) - allowed):
            problems.append(
                (unknown[0], f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
            )
        campaign = campaigns.get(r.get("campaign")) if isinstance(r.get("campaign"), str) else None
        if campaign is None:
            problems.append(("campaign", f"unknown campaign {r.get('campaign')!r}"))
        user_id = r.get("user_id")
        if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 150 or "\x00" in user_id:
            problems.append(("user_id", "expected a non-empty string of at most 150 characters, without NUL"))
        try:
            score = _check_score(r.get("score"))
        except ApplicationError as exc:
            problems.append(("score", str(exc)))
        comment = r.get("comment") or ""
        if not isinstance(comment, str) or len(comment) > 5_000 or "\x00" in comment:
            problems.append(("comment", "expected a string of at most 5,000 characters, without NUL"))
        submitted_at = now
        if r.get("submitted_at") not in (None, ""):
            try:
                submitted_at = parse_timestamp(r["submitted_at"])
            except ValueError as exc:
                problems.append(("submitted_at", str(exc)))
            else:
                if submitted_at > now + MAX_FUTURE:
                    problems.append(("submitted_at", f"{r['submitted_at']} is in the future"))
        if campaign is not None and not problems and not campaign.is_open_on(submitted_at.date()):
            problems.append(("submitted_at", f"campaign {campaign.slug!r} is not open on {submitted_at:%Y-%m-%d}"))
        if problems:
            errors.extend(EventError(index, f, m) for f, m in problems)
            continue
        key = (campaign.pk, user_id.strip())
        if key in rows:
            repeats += 1
            continue
        rows[key] = NpsResponse(
            campaign=campaign,
            product_id=campaign.product_id,
            respondent=key[1],
            score=score,
            comment=comment.strip(),
            submitted_at=submitted_at,
            source=NpsResponse.Source.API,
        )
    if errors:
        return NpsIngestResult(errors=errors)
    with transaction.atomic():
        existing_q = reduce(or_, (Q(campaign_id=c, respondent=u) for c, u in rows), Q(pk__in=[]))
        existing = set(NpsResponse.objects.filter(existing_q).values_list("campaign_id", "respondent"))
        new = [row for key, row in rows.items() if key not in existing]
        # The unique constraint still decides if two callers race; the counts are then approximate.
        NpsResponse.objects.bulk_create(new, ignore_conflicts=True)
    return NpsIngestResult(accepted=len(new), duplicates=len(rows) - len(new) + repeats)


# --- Targets --------------------------------------------------------------------------------------


def _check_target_value(kpi: str, value: Decimal) -> None:
    if not value.is_finite():
        raise ApplicationError("the target must be a number")
    unit = METRICS[kpi].unit
    if kpi == "nps" and not -100 <= value <= 100:
        raise ApplicationError(f"an NPS target lies between -100 and 100, not {value}")
    if kpi == "avg_rating" and not 1 <= value <= 5:
        raise ApplicationError(f"an average-rating target lies between 1 and 5, not {value}")
    if unit.startswith("%") and not 0 <= value <= 100:
        raise ApplicationError(f"a percentage target lies between 0 and 100, not {value}")
    if kpi not in {"nps"} and value < 0:
        raise ApplicationError(f"the target cannot be negative ({value})")


def adoption_target_set(
    *,
    actor,
    kpi: str,
    product: Product | None,
    month: date,
    value: Decimal | str,
    direction: str | None = None,
    target: Target | None = None,
) -> Target:
    """Create or change the target of an adoption KPI for a product (or all products) and month.

    A product manager may set targets only for products they own; only admins set organisation-wide
    ones; executives none. Editing an existing target checks the product it belongs to as well.
    """
    if actor.role_enum not in (Role.ADMIN, Role.PRODUCT_MANAGER):
        raise PermissionDenied("Your role does not allow changing targets.")
    if target is not None:
        _require_product_editor(actor, target.product)
    _require_product_editor(actor, product)
    if kpi not in METRICS:
        raise ApplicationError(f"unknown KPI {kpi!r}; one of {', '.join(METRICS)}")
    try:
        value = Decimal(str(value))
    except InvalidOperation:
        raise ApplicationError(f"{value!r} is not a number") from None
    _check_target_value(kpi, value)
    direction = direction or METRICS[kpi].direction
    if direction not in {d.value for d in Direction}:
        raise ApplicationError(f"direction must be 'up' or 'down', not {direction!r}")
    month = month.replace(day=1)
    clash = Target.objects.filter(kpi=kpi, product=product, service=None, month=month)
    if target is not None:
        clash = clash.exclude(pk=target.pk)
    if target is None:
        target = clash.first() or Target(created_by=actor)
    elif clash.exists():
        raise ApplicationError(f"there is already a {METRICS[kpi].title} target for that product and {month:%B %Y}")
    target.kpi, target.product, target.service, target.month = kpi, product, None, month
    target.value, target.direction = value, direction
    target.save()
    return target


def adoption_target_delete(*, actor, target: Target) -> None:
    if actor.role_enum not in (Role.ADMIN, Role.PRODUCT_MANAGER):
        raise PermissionDenied("Your role does not allow changing targets.")
    _require_product_editor(actor, target.product)
    target.delete()
