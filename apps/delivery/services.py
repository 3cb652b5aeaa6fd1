"""Writes: ingesting delivery records (CSV files, API batches, webhooks), deriving when features ship.

Every batch is all-or-nothing: rows are parsed and checked against the catalog first, and nothing is
written unless every row is valid. Rows are keyed by their source's ids, so a batch sent twice changes
nothing the second time (and says so: created 0, updated 0, unchanged N).
"""

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from apps.catalog.models import Environment, Service, Team
from apps.core.exceptions import ApplicationError

from . import github
from .models import (
    Change,
    DeliveryImport,
    DeliverySource,
    Deployment,
    DeploymentChange,
    Feature,
    FeatureChange,
    Incident,
    TeamDeliveryProfile,
    WebhookDelivery,
)
from .records import SCHEMAS, ParsedRow, RowCollector, RowError, check_columns, parse_rows, slug

DEFAULT_SOURCE = {DeliveryImport.Channel.CSV: "csv", DeliveryImport.Channel.API: "api"}
ENVIRONMENT_ALIASES = {
    "production": "prod",
    "prd": "prod",
    "live": "prod",
    "staging": "uat",
    "stage": "uat",
    "preprod": "uat",
    "development": "dev",
    "develop": "dev",
    "testing": "test",
    "qa": "test",
}
CHUNK = 1000


class DeliveryImportRejected(ApplicationError):
    """A batch was refused; ``errors`` lists every refused value (row, column, value, expected)."""

    def __init__(self, message: str, errors: list[RowError], delivery_import: DeliveryImport | None = None):
        super().__init__(message)
        self.errors = errors
        self.delivery_import = delivery_import


class _Refused(Exception):
    """Raised inside a batch's transaction to roll it back once validation found errors."""


@dataclass
class IngestCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    objects: dict[str, models.Model] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged


def _chunks(values: Iterable, size: int = CHUNK) -> Iterator[list]:
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _known(names: Iterable[str], limit: int = 12) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
    return shown or "none in the catalog yet"


class _Catalog:
    """The catalog rows a batch refers to, loaded once per batch."""

    def __init__(self) -> None:
        self.services = {s.slug: s for s in Service.objects.select_related("team")}
        self.teams = {t.slug: t for t in Team.objects.all()}
        self.hours_per_point = dict(TeamDeliveryProfile.objects.values_list("team_id", "hours_per_point"))
        self.environments = list(Environment.objects.all())

    def environment(self, name: str) -> Environment | None:
        key = name.strip().lower()
        for env in self.environments:
            if env.slug.lower() == key or env.name.lower() == key:
                return env
        kind = ENVIRONMENT_ALIASES.get(key, key)
        of_kind = [env for env in self.environments if env.kind == kind]
        return of_kind[0] if len(of_kind) == 1 else None

    def service_expected(self) -> str:
        return f"the slug of a catalog service ({_known(self.services)})"


def delivery_source_for(*, slug_value: str, kind: str) -> DeliverySource:
    source, _ = DeliverySource.objects.get_or_create(
        slug=slug_value, defaults={"name": slug_value.replace("-", " ").title(), "kind": kind}
    )
    return source


# --- Changes (commits) --------------------------------------------------------------------------------


def _change_ids(shas: Iterable[str]) -> dict[str, int]:
    """Ids of the changes with these SHAs, creating placeholders (commit time unknown yet) for new ones."""
    shas = set(shas)
    ids: dict[str, int] = {}
    for chunk in _chunks(shas):
        ids.update(Change.objects.filter(sha__in=chunk).values_list("sha", "id"))
    missing = [sha for sha in shas if sha not in ids]
    if missing:
        Change.objects.bulk_create([Change(sha=sha) for sha in missing], ignore_conflicts=True)
        for chunk in _chunks(missing):
            ids.update(Change.objects.filter(sha__in=chunk).values_list("sha", "id"))
    return ids


def _sync_links(through: type[models.Model], owner: str, desired: Mapping[int, set[int]]) -> tuple[set[int], set[int]]:
    """Make each owner's linked changes equal ``desired``; returns (owners whose links changed, changes touched)."""
    current: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(desired):
        for owner_id, change_id in through.objects.filter(**{f"{owner}_id__in": chunk}).values_list(
            f"{owner}_id", "change_id"
        ):
            current[owner_id].add(change_id)
    new_links, changed, touched = [], set(), set()
    for owner_id, want in desired.items():
        have = current.get(owner_id, set())
        if want == have:
            continue
        changed.add(owner_id)
        touched |= want | have
        new_links += [through(**{f"{owner}_id": owner_id, "change_id": c}) for c in want - have]
        if have - want:
            through.objects.filter(**{f"{owner}_id": owner_id, "change_id__in": have - want}).delete()
    through.objects.bulk_create(new_links, batch_size=CHUNK)
    return changed, touched


def _save(model: type[models.Model], new: list, changed: list, fields: list[str]) -> None:
    model.objects.bulk_create(new, batch_size=CHUNK)
    if changed:
        now = timezone.now()
        for obj in changed:
            obj.updated_at = now
        model.objects.bulk_update(changed, [*fields, "updated_at"], batch_size=CHUNK)


def _existing(model: type[models.Model], source: DeliverySource, keys: Iterable[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(keys):
        found.update((o.external_id, o) for o in model.objects.filter(source=source, external_id__in=chunk))
    return found


def _apply(obj: models.Model, values: Mapping[str, Any]) -> bool:
    """Set the values that differ; True when anything changed."""
    dirty = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            dirty = True
    return dirty


def _ingest_changes(source: DeliverySource, rows: list[ParsedRow], errors: RowCollector, catalog: _Catalog):
    for r in rows:
        if r.values["service"] and r.values["service"] not in catalog.services:
            errors.add(r.row, "service", r.values["service"], catalog.service_expected())
    if errors.errors:
        raise _Refused
    counts = IngestCounts()
    existing: dict[str, Change] = {}
    for chunk in _chunks(r.values["commit"] for r in rows):
        existing.update((c.sha, c) for c in Change.objects.filter(sha__in=chunk))
    new, changed = [], []
    for r in rows:
        values: dict[str, Any] = {"committed_at": r.values["committed_at"]}
        if r.values["service"]:  # an empty service keeps the one already known
            values["service_id"] = catalog.services[r.values["service"]].pk
        change = existing.get(r.values["commit"])
        if change is None:
            new.append(Change(sha=r.values["commit"], **values))
            counts.created += 1
        elif _apply(change, values):
            changed.append(change)
            counts.updated += 1
        else:
            counts.unchanged += 1
    _save(Change, new, changed, ["committed_at", "service"])
    return counts


# --- Deployments --------------------------------------------------------------------------------------


def _ingest_deployments(
    source: DeliverySource,
    rows: list[ParsedRow],
    errors: RowCollector,
    catalog: _Catalog,
    *,
    authoritative: bool = True,
) -> IngestCounts:
    """Upsert deployments. A webhook is not authoritative: its reports may arrive out of order, so an
    older status report, or an "in progress" after a final one, never overwrites a newer final status."""
    resolved = []
    for r in rows:
        v = r.values
        service = catalog.services.get(v["service"]) if v["service"] else None
        if v["service"] and service is None:
            errors.add(r.row, "service", v["service"], catalog.service_expected())
        env = catalog.environment(v["environment"]) if v["environment"] else None
        if v["environment"] and env is None:
            names = _known(e.slug for e in catalog.environments)
            errors.add(
                r.row, "environment", v["environment"], f"a catalog environment ({names}) or production/staging/dev"
            )
        resolved.append((r, service, env))
    if errors.errors:
        raise _Refused

    counts = IngestCounts()
    change_ids = _change_ids(sha for r in rows for sha in [r.values["commit"], *r.values["changes"]])
    existing = _existing(Deployment, source, (r.values["deployment_id"] for r in rows))
    new, changed, desired_links = [], [], {}
    for r, service, env in resolved:
        v = r.values
        values = {
            "service_id": service.pk,
            "environment_id": env.pk,
            "commit_sha": v["commit"],
            "deployed_at": v["deployed_at"],
            "status": v["status"],
            "status_at": v.get("status_at") or v["deployed_at"],
        }
        deployment = existing.get(v["deployment_id"])
        if deployment is None:
            deployment = Deployment(source=source, external_id=v["deployment_id"], **values)
            new.append(deployment)
        else:
            if not authoritative and _is_stale(deployment, values):
                for name in ("deployed_at", "status", "status_at"):
                    values.pop(name)
            if _apply(deployment, values):
                changed.append(deployment)
        counts.objects[v["deployment_id"]] = deployment
        desired_links[v["deployment_id"]] = {change_ids[sha] for sha in [v["commit"], *v["changes"]]}
    _save(Deployment, new, changed, ["service", "environment", "commit_sha", "deployed_at", "status", "status_at"])

    by_pk = {counts.objects[key].pk: links for key, links in desired_links.items()}
    relinked, touched = _sync_links(DeploymentChange, "deployment", by_pk)
    changed_pks = {d.pk for d in changed}
    new_pks = {d.pk for d in new}
    for deployment in counts.objects.values():
        if deployment.pk in new_pks:
            counts.created += 1
        elif deployment.pk in changed_pks or deployment.pk in relinked:
            counts.updated += 1
            touched |= by_pk[deployment.pk]
        else:
            counts.unchanged += 1
    features_refresh_shipping(change_ids=touched)
    return counts


FINAL_STATUSES = {Deployment.Status.SUCCESS, Deployment.Status.FAILURE}


def _is_stale(deployment: Deployment, incoming: Mapping[str, Any]) -> bool:
    if deployment.status in FINAL_STATUSES and incoming["status"] not in FINAL_STATUSES:
        return True
    return incoming["status_at"] < deployment.status_at


# --- Features -----------------------------------------------------------------------------------------


def _ingest_features(source: DeliverySource, rows: list[ParsedRow], errors: RowCollector, catalog: _Catalog):
    resolved = []
    for r in rows:
        v = r.values
        service = catalog.services.get(v["service"]) if v["service"] else None
        if v["service"] and service is None:
            errors.add(r.row, "service", v["service"], catalog.service_expected())
        team = catalog.teams.get(v["team"]) if v["team"] else (service.team if service else None)
        if v["team"] and team is None:
            errors.add(r.row, "team", v["team"], f"the slug of a catalog team ({_known(catalog.teams)})")
        unit = v["effort_unit"] or Feature.EffortUnit.HOURS
        hours = None
        if team is not None and v["effort"] is not None:
            if unit == Feature.EffortUnit.HOURS:
                hours = v["effort"]
            elif team.pk in catalog.hours_per_point:
                hours = v["effort"] * catalog.hours_per_point[team.pk]
            else:
                errors.add(
                    r.row,
                    "effort_unit",
                    unit,
                    f"hours: team {team.slug!r} has no hours-per-story-point conversion "
                    "(an admin sets one under Delivery › Team delivery profiles)",
                )
        resolved.append((r, service, team, unit, hours))
    if errors.errors:
        raise _Refused

    counts = IngestCounts()
    change_ids = _change_ids(sha for r in rows for sha in r.values["changes"])
    existing = _existing(Feature, source, (r.values["feature_id"] for r in rows))
    new, changed, desired_links = [], [], {}
    for r, service, team, unit, hours in resolved:
        v = r.values
        values = {
            "title": v["title"],
            "service_id": service.pk,
            "team_id": team.pk,
            "effort": v["effort"],
            "effort_unit": unit,
            "effort_hours": hours,
        }
        feature = existing.get(v["feature_id"])
        if feature is None:
            feature = Feature(source=source, external_id=v["feature_id"], **values)
            new.append(feature)
        elif _apply(feature, values):
            changed.append(feature)
        counts.objects[v["feature_id"]] = feature
        desired_links[v["feature_id"]] = {change_ids[sha] for sha in v["changes"]}
    _save(Feature, new, changed, ["title", "service", "team", "effort", "effort_unit", "effort_hours"])
    relinked, _ = _sync_links(
        FeatureChange, "feature", {counts.objects[k].pk: links for k, links in desired_links.items()}
    )
    new_pks, changed_pks = {f.pk for f in new}, {f.pk for f in changed}
    for feature in counts.objects.values():
        if feature.pk in new_pks:
            counts.created += 1
        elif feature.pk in changed_pks or feature.pk in relinked:
            counts.updated += 1
        else:
            counts.unchanged += 1
    features_refresh_shipping(feature_ids=[f.pk for f in counts.objects.values()])
    return counts


def features_refresh_shipping(*, feature_ids: Iterable[int] = (), change_ids: Iterable[int] = ()) -> int:
    """Derive each feature's first production deployment and ship time; returns how many changed.

    A feature ships with the successful production deployment of its own service that brought the last
    of its changes live (each change counts from its first such deployment). A feature with no changes,
    or with a change not yet live, has not shipped.
    """
    feature_ids, change_ids = set(feature_ids), set(change_ids)
    for chunk in _chunks(change_ids):
        feature_ids.update(FeatureChange.objects.filter(change_id__in=chunk).values_list("feature_id", flat=True))
    if not feature_ids:
        return 0
    features, links = [], defaultdict(set)
    for chunk in _chunks(feature_ids):
        features += Feature.objects.filter(pk__in=chunk).only("id", "service_id", "first_deployment_id", "shipped_at")
        for feature_id, change_id in FeatureChange.objects.filter(feature_id__in=chunk).values_list(
            "feature_id", "change_id"
        ):
            links[feature_id].add(change_id)
    first_live: dict[tuple[int, int], tuple] = {}
    for chunk in _chunks({c for cs in links.values() for c in cs}):
        rows = (
            DeploymentChange.objects.filter(
                change_id__in=chunk,
                deployment__status=Deployment.Status.SUCCESS,
                deployment__environment__kind=Environment.Kind.PROD,
            )
            .values_list("change_id", "deployment__service_id", "deployment__deployed_at", "deployment_id")
            .order_by()
        )
        for change_id, service_id, deployed_at, deployment_id in rows:
            key = (change_id, service_id)
            if key not in first_live or (deployed_at, deployment_id) < first_live[key]:
                first_live[key] = (deployed_at, deployment_id)
    changed = []
    for feature in features:
        lives = [first_live.get((c, feature.service_id)) for c in links.get(feature.pk, ())]
        shipped_at, deployment_id = max(lives) if lives and None not in lives else (None, None)
        if (feature.shipped_at, feature.first_deployment_id) != (shipped_at, deployment_id):
            feature.shipped_at, feature.first_deployment_id = shipped_at, deployment_id
            feature.updated_at = timezone.now()
            changed.append(feature)
    Feature.objects.bulk_update(changed, ["shipped_at", "first_deployment", "updated_at"], batch_size=CHUNK)
    return len(changed)


# --- Incidents ----------------------------------------------------------------------------------------


def _ingest_incidents(source: DeliverySource, rows: list[ParsedRow], errors: RowCollector, catalog: _Catalog):
    wanted: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.values["deployment_id"]:
            wanted[r.values["deployment_source"] or source.slug].add(r.values["deployment_id"])
    sources = dict(DeliverySource.objects.filter(slug__in=wanted).values_list("slug", "id"))
    sources.setdefault(source.slug, source.pk)
    deployments: dict[tuple[str, str], int] = {}
    for source_slug, ids in wanted.items():
        if source_slug not in sources:
            continue
        for chunk in _chunks(ids):
            for external_id, pk in Deployment.objects.filter(
                source_id=sources[source_slug], external_id__in=chunk
            ).values_list("external_id", "id"):
                deployments[(source_slug, external_id)] = pk

    resolved = []
    for r in rows:
        v = r.values
        service = catalog.services.get(v["service"]) if v["service"] else None
        if v["service"] and service is None:
            errors.add(r.row, "service", v["service"], catalog.service_expected())
        if v["started_at"] and v["resolved_at"] and v["resolved_at"] < v["started_at"]:
            errors.add(
                r.row, "resolved_at", v["resolved_at"].isoformat(), f"a time at or after started_at ({v['started_at']})"
            )
        deployment_pk = None
        if v["deployment_id"]:
            source_slug = v["deployment_source"] or source.slug
            if source_slug not in sources:
                errors.add(r.row, "deployment_source", source_slug, f"a delivery source ({_known(sources)})")
            else:
                deployment_pk = deployments.get((source_slug, v["deployment_id"]))
                if deployment_pk is None:
                    errors.add(
                        r.row,
                        "deployment_id",
                        v["deployment_id"],
                        f"the id of a deployment already received from source {source_slug!r}",
                    )
        resolved.append((r, service, deployment_pk))
    if errors.errors:
        raise _Refused

    counts = IngestCounts()
    existing = _existing(Incident, source, (r.values["incident_id"] for r in rows))
    new, changed = [], []
    for r, service, deployment_pk in resolved:
        v = r.values
        values = {
            "title": v["title"] or "",
            "service_id": service.pk,
            "started_at": v["started_at"],
            "resolved_at": v["resolved_at"],
            "deployment_id": deployment_pk,
        }
        incident = existing.get(v["incident_id"])
        if incident is None:
            new.append(Incident(source=source, external_id=v["incident_id"], **values))
            counts.created += 1
        elif _apply(incident, values):
            changed.append(incident)
            counts.updated += 1
        else:
            counts.unchanged += 1
    _save(Incident, new, changed, ["title", "service", "started_at", "resolved_at", "deployment"])
    return counts


INGESTERS = {
    DeliveryImport.Kind.FEATURES: _ingest_features,
    DeliveryImport.Kind.DEPLOYMENTS: _ingest_deployments,
    DeliveryImport.Kind.CHANGES: _ingest_changes,
    DeliveryImport.Kind.INCIDENTS: _ingest_incidents,
}


# --- Batches: CSV files and API requests --------------------------------------------------------------


def _run_batch(
    *,
    kind: str,
    channel: str,
    source_slug: str | None,
    records: list[tuple[int, Mapping[str, Any]]],
    errors: RowCollector,
    check_keys: bool,
    actor=None,
    filename: str = "",
    sha256: str = "",
) -> DeliveryImport:
    source_slug = (source_slug or "").strip() or DEFAULT_SOURCE[channel]
    try:
        slug(source_slug)
    except ValueError as exc:
        errors.add(0, "source", source_slug, str(exc))
    if not records and not errors.errors:
        errors.add(2 if channel == DeliveryImport.Channel.CSV else 0, "(rows)", "", "at least one record")
    counts = IngestCounts()
    source = None
    if not errors.errors:
        try:
            with transaction.atomic():
                rows = parse_rows(SCHEMAS[kind], records, errors, check_keys=check_keys)
                # Check references even when some values did not parse, so one answer lists every problem;
                # each ingester writes nothing while errors exist.
                source = delivery_source_for(slug_value=source_slug, kind=channel)
                counts = INGESTERS[kind](source, rows, errors, _Catalog())
        except _Refused:
            source = None
    errors.errors.sort(key=lambda e: e.row)
    status = DeliveryImport.Status.REJECTED if errors.errors else DeliveryImport.Status.APPLIED
    record = DeliveryImport.objects.create(
        channel=channel,
        kind=kind,
        source=source or DeliverySource.objects.filter(slug=source_slug).first(),
        filename=filename[:255],
        sha256=sha256,
        uploaded_by=actor,
        status=status,
        rows=len(records),
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        errors=[e.as_dict() for e in errors.errors],
    )
    if errors.errors:
        what = f"{filename or 'the batch'}"
        more = f" (showing the first {len(errors.errors)})" if errors.truncated else ""
        raise DeliveryImportRejected(
            f"{what} was not imported: {len(errors.errors)} value(s) refused{more}; nothing was written. "
            f"First: {errors.errors[0].message}",
            errors.errors,
            record,
        )
    return record


def delivery_csv_import(
    *, kind: str, content: bytes, filename: str, source_slug: str | None = None, actor=None
) -> DeliveryImport:
    """Import one CSV file of ``kind`` (features, deployments, changes, incidents), all or nothing.

    Raises DeliveryImportRejected listing every refused value by row (the header is row 1), column,
    value and what was expected.
    """
    if kind not in SCHEMAS:
        raise ApplicationError(f"unknown kind {kind!r}: expected one of {', '.join(SCHEMAS)}")
    errors = RowCollector("row")
    records: list[tuple[int, Mapping[str, Any]]] = []
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errors.add(1, "(file)", filename, f"UTF-8 text (byte {exc.start} is not valid UTF-8)")
        text = ""
    if text and not errors.errors:
        reader = csv.reader(io.StringIO(text, newline=""))
        last_read = 0  # the last row read (the header is row 1)
        try:
            header = [name.strip().lower() for name in next(reader, [])]
            last_read = 1
            if check_columns(SCHEMAS[kind], header, errors, row=1):
                for number, values in enumerate(reader, start=2):
                    last_read = number
                    if not any(v.strip() for v in values):
                        continue
                    if len(values) != len(header):
                        errors.add(
                            number,
                            "(row)",
                            ",".join(values),
                            f"{len(header)} fields like the header, not {len(values)}",
                        )
                        continue
                    records.append((number, dict(zip(header, values, strict=True))))
        except csv.Error as exc:
            # e.g. a field over the csv module's size limit: the rest of the file cannot be read reliably
            errors.add(last_read + 1, "(row)", "", f"a readable CSV row ({exc})")
    elif not errors.errors:
        errors.add(1, "(header)", "", f"a header row with the columns {', '.join(SCHEMAS[kind].names)}")
    return _run_batch(
        kind=kind,
        channel=DeliveryImport.Channel.CSV,
        source_slug=source_slug,
        records=records,
        errors=errors,
        check_keys=False,
        actor=actor,
        filename=filename,
        sha256=hashlib.sha256(content).hexdigest(),
    )


MAX_API_ITEMS = 5_000  # records per API batch


def delivery_api_ingest(*, kind: str, items: Any, source_slug: str | None = None, actor=None) -> DeliveryImport:
    """Ingest a JSON list of records of ``kind``, all or nothing; errors are numbered by item (from 0)."""
    errors = RowCollector("item")
    records: list[tuple[int, Mapping[str, Any]]] = []
    if source_slug is not None and not isinstance(source_slug, str):
        errors.add(0, "source", json.dumps(source_slug)[:80], "the slug of a delivery source (text)")
        source_slug = None
    if not isinstance(items, list):
        errors.add(0, "items", type(items).__name__, "a JSON list of records")
    elif len(items) > MAX_API_ITEMS:
        errors.add(0, "items", f"{len(items):,} records", f"at most {MAX_API_ITEMS:,} records per batch; split it")
    else:
        for index, item in enumerate(items):
            if isinstance(item, dict):
                records.append((index, item))
            else:
                errors.add(index, "(item)", json.dumps(item)[:80], "a JSON object")
    return _run_batch(
        kind=kind,
        channel=DeliveryImport.Channel.API,
        source_slug=source_slug,
        records=records,
        errors=errors,
        check_keys=True,
        actor=actor,
    )


# --- Webhooks -----------------------------------------------------------------------------------------


@dataclass
class WebhookOutcome:
    detail: str
    deployment: Deployment | None = None
    duplicate: bool = False


def github_webhook_receive(
    *, source_slug: str, event: str, delivery_id: str, signature: str | None, body: bytes
) -> WebhookOutcome:
    """Verify and apply one GitHub-style webhook delivery; idempotent on the delivery id and deployment id.

    Raises github.WebhookError (with an HTTP status) when the delivery is refused.
    """
    source = DeliverySource.objects.filter(slug=source_slug, kind=DeliverySource.Kind.GITHUB).first()
    if source is None:
        raise github.WebhookError(404, f"no GitHub webhook source {source_slug!r} is configured")
    github.verify_signature(source=source, body=body, header=signature)
    if not delivery_id:
        raise github.WebhookError(400, "the X-GitHub-Delivery header is missing: every delivery needs its id")
    if event == "ping":
        return WebhookOutcome("pong: the signature is valid")
    if event not in github.DEPLOYMENT_EVENTS:
        return WebhookOutcome(f"ignored: the {event or 'unnamed'} event carries no deployment")
    if WebhookDelivery.objects.filter(source=source, delivery_id=delivery_id).exists():
        return WebhookOutcome("already processed: this delivery id was received before", duplicate=True)
    payload = github.parse_json(body)
    mapped = github.deployment_record(payload, event=event, source=source)
    if mapped is None:
        outcome = "ignored: an inactive status only marks a superseded deployment"
        with transaction.atomic():
            _record_delivery(source, delivery_id, event, outcome, None)
        return WebhookOutcome(outcome)

    errors = RowCollector("delivery")
    catalog = _Catalog()
    try:
        with transaction.atomic():
            delivery = _record_delivery(source, delivery_id, event, "", None)
            if delivery is None:
                return WebhookOutcome("already processed: this delivery id was received before", duplicate=True)
            rows = parse_rows(SCHEMAS["deployments"], [(0, mapped.record)], errors, check_keys=False)
            if mapped.changes:
                change_rows = parse_rows(SCHEMAS["changes"], mapped.changes, errors, check_keys=False)
            if errors.errors:
                raise _Refused
            rows[0].values["status_at"] = mapped.status_at
            counts = _ingest_deployments(source, rows, errors, catalog, authoritative=False)
            if mapped.changes:
                _ingest_changes(source, change_rows, errors, catalog)
            deployment = counts.objects[mapped.record["deployment_id"]]
            outcome = (
                f"deployment {deployment.external_id} of {mapped.record['service']} to "
                f"{mapped.record['environment']}: {deployment.get_status_display().lower()}"
            )
            delivery.outcome, delivery.deployment = outcome[:300], deployment
            delivery.save(update_fields=["outcome", "deployment"])
    except _Refused:
        raise github.WebhookError(
            400,
            "the deployment in this delivery was refused; nothing was written",
            [github.error_for_field(e) for e in errors.errors],
        ) from None
    return WebhookOutcome(outcome, deployment)


def _record_delivery(source, delivery_id: str, event: str, outcome: str, deployment) -> WebhookDelivery | None:
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(
                source=source, delivery_id=delivery_id[:100], event=event[:60], outcome=outcome, deployment=deployment
            )
    except IntegrityError:  # the same delivery, processed concurrently
        return None


# --- Team profiles ------------------------------------------------------------------------------------


@transaction.atomic
def team_delivery_profile_set(*, team: Team, hours_per_point: Decimal) -> TeamDeliveryProfile:
    """Set a team's hours per story point and re-derive the hours of its point-estimated features."""
    if hours_per_point <= 0:
        raise ApplicationError("hours per story point must be greater than 0")
    profile, _ = TeamDeliveryProfile.objects.update_or_create(team=team, defaults={"hours_per_point": hours_per_point})
    features = list(Feature.objects.filter(team=team, effort_unit=Feature.EffortUnit.POINTS))
    for feature in features:
        feature.effort_hours = feature.effort * hours_per_point
        feature.updated_at = timezone.now()
    Feature.objects.bulk_update(features, ["effort_hours", "updated_at"], batch_size=CHUNK)
    return profile
