"""Backing up and restoring the portal's data, portable between SQLite and PostgreSQL.

A backup is a gzip file of JSON lines:

1. a header: ``{"format": "opsportal-backup", "version": 1, "created_at", "vendor", "migrations": {app:
   [applied migration names]}, "models": [{"label", "columns"}], "counts": {label: rows}}``;
2. one line per row, ``[model index, value, value, ...]`` in the header's column order (concrete fields by
   attribute name, foreign keys as ids, except content types and permissions, which are written by natural
   key because ``migrate`` numbers them differently in every database);
3. a trailer, ``{"end": true, "counts": {...}}``: a file without it was cut short and is refused.

Every model of every installed app is included (users with their hashed passwords, API tokens as hashes,
beat schedules, the audit trail), except sessions, content types and permissions (``migrate`` creates
them), worker heartbeats and beat's change marker. Rows are read with ``iterator(chunk_size)`` inside one
snapshot and written as they are read, so memory stays flat on big tables.

A restore reads the header, checks the migration state is the same as the database's, refuses a database
that already holds data (unless forced), then in one transaction empties the included tables (including
the rows ``migrate`` seeds: default schedules, DORA benchmarks), loads every row in batches, checks the
counts against the header and the trailer, checks foreign keys and resets PostgreSQL's sequences. Any
problem (a corrupt or truncated file, a count that does not match) rolls everything back.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import os
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from django.utils.duration import duration_iso_string

FORMAT = "opsportal-backup"
VERSION = 1
CHUNK = 2000
BATCH = 1000

EXCLUDED = frozenset(
    {
        "sessions.session",
        "contenttypes.contenttype",
        "auth.permission",
        "core.workerheartbeat",
        "django_celery_beat.periodictasks",
    }
)
# Rows that ``migrate`` itself creates: a database holding only these counts as empty.
SEEDED = frozenset(
    {
        "django_celery_beat.periodictask",
        "django_celery_beat.intervalschedule",
        "django_celery_beat.crontabschedule",
        "django_celery_beat.clockedschedule",
        "django_celery_beat.solarschedule",
        "delivery.dorabenchmark",
        "delivery.doratierthreshold",
        "audit.auditentry",
    }
)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# --- Models and columns ------------------------------------------------------------------------------------


def backup_models() -> list[type[models.Model]]:
    """Every model whose rows a backup holds, parents before the models referring to them."""
    chosen = [
        m
        for m in apps.get_models(include_auto_created=True)
        if m._meta.managed and not m._meta.proxy and m._meta.label_lower not in EXCLUDED
    ]
    for m in chosen:
        if m._meta.parents:
            raise BackupError(f"{m._meta.label} uses multi-table inheritance, which backups do not support")
    ordered: list[type[models.Model]] = []
    seen: set = set()

    def visit(m, stack=()):
        if m in seen or m in stack:
            return
        for f in m._meta.concrete_fields:
            target = f.related_model if f.is_relation else None
            if target is not None and target is not m and target in chosen:
                visit(target, (*stack, m))
        seen.add(m)
        ordered.append(m)

    for m in sorted(chosen, key=lambda m: m._meta.label_lower):
        visit(m)
    return ordered


def _columns(model) -> list[models.Field]:
    return list(model._meta.concrete_fields)


def applied_migrations(using: str) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in MigrationRecorder(connections[using]).applied_migrations():
        applied.setdefault(app, []).append(name)
    return {app: sorted(names) for app, names in sorted(applied.items())}


# --- Encoding values ---------------------------------------------------------------------------------------


def _encoder(f: models.Field, natural: dict) -> Callable[[Any], Any]:
    if f.is_relation and f.related_model is ContentType:
        cts = natural["contenttypes"]
        return lambda v: None if v is None else cts[v]
    if f.is_relation and f.related_model is Permission:
        perms = natural["permissions"]
        return lambda v: None if v is None else perms[v]
    if isinstance(f, models.JSONField):
        return lambda v: v

    def encode(v):
        if v is None or isinstance(v, bool | int | float | str):
            return v
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, datetime.datetime | datetime.date | datetime.time):
            return v.isoformat()
        if isinstance(v, datetime.timedelta):
            return duration_iso_string(v)
        if isinstance(v, uuid.UUID):
            return str(v)
        if isinstance(v, bytes | memoryview | bytearray):
            return base64.b64encode(bytes(v)).decode("ascii")
        prepared = f.get_prep_value(v)  # third-party types (e.g. time zones) as the database stores them
        return prepared if isinstance(prepared, str | int | float | bool) else str(prepared)

    return encode


def _decoder(f: models.Field, natural: dict) -> Callable[[Any], Any]:
    if f.is_relation and f.related_model is ContentType:
        cts = natural["contenttypes"]
        return lambda v: None if v is None else cts[tuple(v)]
    if f.is_relation and f.related_model is Permission:
        perms = natural["permissions"]
        return lambda v: None if v is None else perms[tuple(v)]
    if isinstance(f, models.JSONField):
        return lambda v: v
    return lambda v: None if v is None else f.to_python(v)


# --- Backup ------------------------------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def backup(path: str | os.PathLike, *, using: str = "default", log: Log = _quiet) -> BackupResult:
    """Write every row to ``path`` (gzip JSON lines, see the module docstring), from one consistent snapshot."""
    path = Path(path)
    connection = connections[using]
    partial = path.with_name(path.name + ".partial")
    result = BackupResult(path)
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:  # one snapshot for the whole backup
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        natural = {
            "contenttypes": {ct.pk: [ct.app_label, ct.model] for ct in ContentType.objects.using(using).order_by("pk")},
            "permissions": {
                p.pk: [p.codename, p.content_type.app_label, p.content_type.model]
                for p in Permission.objects.using(using).select_related("content_type")
            },
        }
        chosen = backup_models()
        counts = {m._meta.label_lower: m._base_manager.using(using).count() for m in chosen}
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": timezone.now().isoformat(),
            "vendor": connection.vendor,
            "migrations": applied_migrations(using),
            "models": [{"label": m._meta.label_lower, "columns": [f.attname for f in _columns(m)]} for m in chosen],
            "counts": counts,
        }
        try:
            with gzip.open(partial, "wt", encoding="utf-8", compresslevel=6) as out:
                out.write(json.dumps(header, separators=(",", ":")) + "\n")
                for index, model in enumerate(chosen):
                    label = model._meta.label_lower
                    cols = _columns(model)
                    encoders = [_encoder(f, natural) for f in cols]
                    rows = (
                        model._base_manager.using(using)
                        .order_by("pk")
                        .values_list(*[f.attname for f in cols])
                        .iterator(chunk_size=CHUNK)
                    )
                    n = 0
                    for row in rows:
                        line = [index, *(enc(v) for enc, v in zip(encoders, row, strict=True))]
                        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
                        n += 1
                    if n != counts[label]:
                        raise BackupError(f"{label}: counted {counts[label]} rows but read {n}")
                    result.counts[label] = n
                    if n:
                        log(f"  {label}: {n} rows")
                out.write(json.dumps({"end": True, "counts": result.counts}, separators=(",", ":")) + "\n")
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    return result


# --- Restore -----------------------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _lines(stream: IO[str], path: Path) -> Iterator[tuple[int, Any]]:
    number = 0
    try:
        for number, text in enumerate(stream, start=1):
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                raise BackupError(f"{path}: line {number} is not valid JSON ({exc.msg}): the file is corrupt") from exc
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as exc:
        raise BackupError(
            f"{path}: cannot read past line {number} ({exc}): the file is corrupt or was cut short"
        ) from exc


def read_header(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            _, header = next(_lines(stream, path))
    except StopIteration:
        raise BackupError(f"{path}: the file is empty") from None
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError(f'{path}: not an opsportal backup (its first line has no "format": "{FORMAT}")')
    if header.get("version") != VERSION:
        raise BackupError(f"{path}: backup format version {header.get('version')}; this portal reads version {VERSION}")
    return header


def check_migrations(header: dict, using: str) -> None:
    here, there = applied_migrations(using), header["migrations"]
    problems = []
    for app in sorted(set(here) | set(there)):
        missing = sorted(set(there.get(app, [])) - set(here.get(app, [])))
        extra = sorted(set(here.get(app, [])) - set(there.get(app, [])))
        if missing:
            problems.append(f"{app}: the backup has {', '.join(missing)}, not applied here")
        if extra:
            problems.append(f"{app}: this database has {', '.join(extra)}, which the backup predates")
    if problems:
        raise BackupError(
            "the backup was taken at another migration state than this database's; migrate this database to the "
            "backup's code version first. " + "; ".join(problems)
        )


def existing_data(using: str) -> dict[str, int]:
    """Rows this database holds beyond what ``migrate`` seeds, by model: empty for a fresh database."""
    found = {}
    for model in backup_models():
        label = model._meta.label_lower
        through_of = model._meta.auto_created
        if label in SEEDED or (through_of and through_of._meta.label_lower in SEEDED):
            continue
        if model._base_manager.using(using).exists():
            found[label] = model._base_manager.using(using).count()
    return found


def _natural_maps(using: str) -> dict:
    cts = {(ct.app_label, ct.model): ct.pk for ct in ContentType.objects.using(using)}
    perms = {
        (p.codename, p.content_type.app_label, p.content_type.model): p.pk
        for p in Permission.objects.using(using).select_related("content_type")
    }

    class ContentTypes(dict):
        def __missing__(self, key):  # a model since removed from the code: keep its rows' references
            ct, _ = ContentType.objects.using(using).get_or_create(app_label=key[0], model=key[1])
            self[key] = ct.pk
            return ct.pk

    class Permissions(dict):
        def __missing__(self, key):
            codename, app_label, model = key
            perm, _ = Permission.objects.using(using).get_or_create(
                codename=codename, content_type_id=content_types[(app_label, model)], defaults={"name": codename}
            )
            self[key] = perm.pk
            return perm.pk

    content_types = ContentTypes(cts)
    return {"contenttypes": content_types, "permissions": Permissions(perms)}


def restore(
    path: str | os.PathLike, *, using: str = "default", force: bool = False, log: Log = _quiet
) -> RestoreResult:
    """Load a backup into this database, all or nothing (see the module docstring)."""
    path = Path(path)
    header = read_header(path)
    check_migrations(header, using)
    if not force and (found := existing_data(using)):
        sample = ", ".join(f"{label} ({n})" for label, n in list(found.items())[:5])
        raise BackupError(
            f"this database already holds data ({sample}{', ...' if len(found) > 5 else ''}); restore into an "
            "empty, migrated database, or pass --force to replace everything in it"
        )
    known = {m._meta.label_lower: m for m in backup_models()}
    models_in_file = []
    for spec in header["models"]:
        model = known.get(spec["label"])
        if model is None:
            raise BackupError(f"{path}: the backup has rows of {spec['label']}, which this portal does not have")
        if spec["columns"] != [f.attname for f in _columns(model)]:
            raise BackupError(f"{path}: {spec['label']} has other columns in the backup than in this database")
        models_in_file.append(model)
    connection = connections[using]
    result = RestoreResult()
    with transaction.atomic(using=using):
        natural = _natural_maps(using)
        for model in reversed(list(known.values())):
            model._base_manager.using(using).all()._raw_delete(using)
        decoders = [[_decoder(f, natural) for f in _columns(m)] for m in models_in_file]
        batch: list[models.Model] = []
        current = None
        trailer = None

        def flush():
            if batch:
                if prepare := getattr(current, "before_bulk_load", None):  # e.g. partitions the rows go into
                    prepare(batch, using)
                current._base_manager.using(using).bulk_create(batch, batch_size=BATCH)
                batch.clear()

        with gzip.open(path, "rt", encoding="utf-8") as stream:
            lines = _lines(stream, path)
            next(lines)  # the header, read above
            for number, line in lines:
                if trailer is not None:
                    raise BackupError(f"{path}: line {number} follows the end marker: the file is corrupt")
                if isinstance(line, dict):
                    if not line.get("end"):
                        raise BackupError(f"{path}: line {number} is neither a row nor the end marker")
                    trailer = line
                    continue
                if not isinstance(line, list) or not line or not isinstance(line[0], int):
                    raise BackupError(f"{path}: line {number} is not a row ([model index, values...])")
                index = line[0]
                if not 0 <= index < len(models_in_file):
                    raise BackupError(f"{path}: line {number} names model {index}, which the header does not list")
                model = models_in_file[index]
                if model is not current:
                    flush()
                    if current is not None:
                        log(f"  {current._meta.label_lower}: {result.counts.get(current._meta.label_lower, 0)} rows")
                    current = model
                values = line[1:]
                if len(values) != len(decoders[index]):
                    raise BackupError(
                        f"{path}: line {number} has {len(values)} values for {model._meta.label_lower}, "
                        f"expected {len(decoders[index])}"
                    )
                try:
                    batch.append(model(*(dec(v) for dec, v in zip(decoders[index], values, strict=True))))
                except Exception as exc:
                    raise BackupError(f"{path}: line {number} ({model._meta.label_lower}): {exc}") from exc
                label = model._meta.label_lower
                result.counts[label] = result.counts.get(label, 0) + 1
                if len(batch) >= BATCH:
                    flush()
            flush()
            if current is not None:
                log(f"  {current._meta.label_lower}: {result.counts.get(current._meta.label_lower, 0)} rows")
        if trailer is None:
            raise BackupError(f"{path}: the file ends without its end marker: it was cut short; nothing was restored")
        expected = {label: n for label, n in header["counts"].items() if n}
        if result.counts != expected or trailer.get("counts", {}) != header["counts"]:
            raise BackupError(
                f"{path}: the rows read do not match the header's counts: "
                + _count_diff(expected, result.counts)
                + "; nothing was restored"
            )
        stored = {label: known[label]._base_manager.using(using).count() for label in header["counts"]}
        if stored != header["counts"]:
            raise BackupError("after loading, the tables hold " + _count_diff(header["counts"], stored))
        connection.check_constraints(table_names=[m._meta.db_table for m in known.values()])
        sequences = connection.ops.sequence_reset_sql(no_style(), list(known.values()))
        if sequences:
            with connection.cursor() as cursor:
                for sql in sequences:
                    cursor.execute(sql)
        _schedules_changed(using)
    return result


def _count_diff(expected: dict, actual: dict) -> str:
    diffs = [
        f"{label} {actual.get(label, 0)} instead of {expected.get(label, 0)}"
        for label in sorted(set(expected) | set(actual))
        if expected.get(label, 0) != actual.get(label, 0)
    ]
    return ", ".join(diffs[:10]) + (" ..." if len(diffs) > 10 else "")


def _schedules_changed(using: str) -> None:
    """Tell a running beat to reload its schedules."""
    try:
        from django_celery_beat.models import PeriodicTasks
    except ImportError:  # pragma: no cover - beat is installed with the portal
        return
    PeriodicTasks.objects.using(using).update_or_create(ident=1, defaults={"last_update": timezone.now()})


# --- PostgreSQL's own tools (optional) ---------------------------------------------------------------------


def _pg(using: str) -> tuple[dict, str]:
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise BackupError(
            f"--method pg_dump needs PostgreSQL; this database is {connection.vendor}: use the portable method"
        )
    s = connection.settings_dict
    env = {**os.environ, "PGHOST": s["HOST"] or "127.0.0.1", "PGPORT": str(s["PORT"] or 5432), "PGUSER": s["USER"]}
    if s.get("PASSWORD"):
        env["PGPASSWORD"] = s["PASSWORD"]
    return env, s["NAME"]


def _run(args: list[str], env: dict) -> None:
    import shutil
    import subprocess

    if shutil.which(args[0]) is None:
        raise BackupError(f"{args[0]} is not installed (Debian: apt-get install postgresql-client)")
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed: {done.stderr.strip() or done.returncode}")


def pg_backup(path: str | os.PathLike, *, using: str = "default") -> Path:
    """``pg_dump --format=custom`` of the whole database (schema and data, not sessions)."""
    env, name = _pg(using)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--exclude-table-data=django_session",
                f"--file={partial}",
                name,
            ],
            env,
        )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def pg_restore(path: str | os.PathLike, *, using: str = "default", force: bool = False) -> list[str]:
    """``pg_restore`` in one transaction into a new database (created, not migrated: the dump holds the schema).

    Returns the migrations the code has that the restored database has not applied (run ``migrate`` then).
    """
    from django.db.migrations.loader import MigrationLoader

    env, name = _pg(using)
    connection = connections[using]
    if not Path(path).is_file():
        raise BackupError(f"{path}: no such file")
    if not force and connection.introspection.table_names():
        raise BackupError(
            "this database already has tables; pg_restore loads the schema too, so restore into a new database "
            "(createdb, without migrate), or pass --force to drop and replace what is there"
        )
    connection.close()  # pg_restore must not wait on our own open transaction
    args = ["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]
    if force:
        args += ["--clean", "--if-exists"]
    _run([*args, f"--dbname={name}", str(path)], env)
    loader = MigrationLoader(connection)
    return sorted(f"{app}.{migration}" for app, migration in set(loader.graph.nodes) - set(loader.applied_migrations))
