"""Writing the audit trail: signal handlers for every audited model, and :func:`record` for the few writes
that bypass signals (``QuerySet.update``, ``bulk_create``).

``pre_save`` reads the stored row (one query, skipped when a save touches only ignored fields), ``post_save``
compares it with the saved instance and writes one entry when something changed, in the same transaction as
the change. ``pre_delete`` takes the snapshot while related rows still exist; ``post_delete`` writes it.
Many-to-many changes made right after a save (``rule.channels.set(...)``) are merged into that save's entry.
Fixture loads and restores (``raw`` saves) are not recorded.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.utils import timezone

from . import context
from .registry import ALWAYS_IGNORED, AUDITED, MASK, AuditedModel, is_secret

log = logging.getLogger(__name__)

# model class -> its spec; filled by connect()
SPECS: dict[type[models.Model], AuditedModel] = {}
_STATE = "_audit_before"
_LAST = "_audit_last_entry"
_DELETED = "_audit_deleted"
MERGE_WINDOW = datetime.timedelta(seconds=60)
URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:\s]+):[^/@\s]+@", re.IGNORECASE)


# --- Snapshots ---------------------------------------------------------------------------------------------


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if is_secret(str(k)) and v not in (None, "") else _mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\1:" + MASK + "@", value)
    return value


def _plain(field: models.Field, raw: Any) -> Any:
    """A field's value as JSON, normalised so the same value read back from the database compares equal."""
    if raw is None:
        return None
    if not isinstance(field, models.JSONField):
        try:
            raw = field.to_python(raw)
        except Exception:  # an invalid value being saved: record what was given
            return str(raw)
    if isinstance(raw, Decimal):
        return format(raw.normalize(), "f") if raw.is_finite() else str(raw)
    if isinstance(raw, datetime.datetime):
        if timezone.is_aware(raw):
            raw = raw.astimezone(datetime.UTC)
        return raw.isoformat()
    if isinstance(raw, bytes | memoryview):
        return f"<{len(bytes(raw))} bytes>"
    try:
        return _mask_json(json.loads(json.dumps(raw, cls=DjangoJSONEncoder)))
    except (TypeError, ValueError):  # e.g. a time zone object: its text is its value
        return _mask_json(str(raw))


def _fields(spec: AuditedModel, model: type[models.Model]):
    ignored = ALWAYS_IGNORED | spec.ignore
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in ignored]


def snapshot(instance: models.Model, spec: AuditedModel) -> tuple[dict, dict]:
    """(values, digests): field values as JSON with secrets masked, and a digest of each secret's real value,
    kept only in memory, so a changed password shows as changed without its hash being stored."""
    values, digests = {}, {}
    for f in _fields(spec, type(instance)):
        raw = getattr(instance, f.attname)
        if is_secret(f.name):
            values[f.name] = MASK if raw not in (None, "") else ""
            digests[f.name] = hashlib.sha256(repr(raw).encode()).hexdigest()
        else:
            values[f.name] = _plain(f, raw)
    return values, digests


def _repr(instance: models.Model) -> str:
    try:
        return str(instance)[:250]
    except Exception:
        return f"{instance._meta.verbose_name} {instance.pk}"[:250]


# --- Writing -----------------------------------------------------------------------------------------------


def record(
    *,
    model: type[models.Model] | models.Model,
    object_id: Any,
    object_repr: str,
    action: str,
    before: dict | None = None,
    after: dict | None = None,
    changed_fields: list[str] | None = None,
    using: str = "default",
):
    """Write one entry by hand, for changes made without signals (``QuerySet.update``, ``bulk_create``).

    ``before`` and ``after`` are plain JSON dicts of field values; secrets in them are masked here too.
    """
    from .models import AuditEntry

    actor = context.current_actor()
    user = actor.user
    model_class = model if isinstance(model, type) else type(model)
    if action == "deleted" and isinstance(user, model_class) and str(user.pk) == str(object_id):
        user = None  # a user deleting their own account: the name stays, the reference cannot
    before = {k: (MASK if is_secret(k) and v not in (None, "") else _mask_json(v)) for k, v in (before or {}).items()}
    after = {k: (MASK if is_secret(k) and v not in (None, "") else _mask_json(v)) for k, v in (after or {}).items()}
    if changed_fields is None:
        changed_fields = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return AuditEntry.objects.using(using).create(
        at=timezone.now(),
        actor=user,
        actor_name=actor.name[:150],
        token_name=actor.token_name[:120],
        content_type=ContentType.objects.db_manager(using).get_for_model(model_class),
        object_id=str(object_id)[:64],
        object_repr=object_repr[:250],
        action=action,
        before=before if action != "created" else None,
        after=after if action != "deleted" else None,
        changed_fields=changed_fields,
        ip=actor.ip,
        via=actor.via,
    )


def _field_names(model, update_fields) -> set[str] | None:
    """``update_fields`` by field name (they may be given by attribute name, e.g. ``owner_id``)."""
    if update_fields is None:
        return None
    return {model._meta.get_field(name).name for name in update_fields}


def _pre_save(sender, instance, raw=False, using="default", update_fields=None, **kwargs):
    if raw:
        return
    instance.__dict__.pop(_STATE, None)
    if instance._state.adding or instance.pk is None:
        return
    spec = SPECS[sender]
    update_fields = _field_names(sender, update_fields)
    if update_fields is not None and not (update_fields - ALWAYS_IGNORED - spec.ignore):
        return  # only bookkeeping fields: nothing to record
    old = sender._base_manager.using(using).filter(pk=instance.pk).first()
    if old is not None:
        instance.__dict__[_STATE] = snapshot(old, spec)


def _post_save(sender, instance, created=False, raw=False, using="default", update_fields=None, **kwargs):
    if raw:
        return
    state = instance.__dict__.pop(_STATE, None)
    if not created and state is None:
        return
    spec = SPECS[sender]
    update_fields = _field_names(sender, update_fields)
    after, after_digests = snapshot(instance, spec)
    if created:
        before, changed = None, [k for k, v in after.items() if v not in (None, "", [], {})]
    else:
        before, before_digests = state
        names = after.keys() if update_fields is None else [k for k in after if k in update_fields]
        changed = [
            k
            for k in names
            if before.get(k) != after[k] or (k in after_digests and before_digests.get(k) != after_digests[k])
        ]
        if not changed:
            return
        if update_fields is not None:  # fields not saved keep their stored value
            after = {k: (after[k] if k in changed else before.get(k)) for k in after}
    entry = record(
        model=sender,
        object_id=instance.pk,
        object_repr=_repr(instance),
        action="created" if created else "updated",
        before=before,
        after=after,
        changed_fields=changed,
        using=using,
    )
    instance.__dict__[_LAST] = (entry, context.current())


def _pre_delete(sender, instance, using="default", **kwargs):
    values, _ = snapshot(instance, SPECS[sender])
    instance.__dict__[_DELETED] = (values, _repr(instance))


def _post_delete(sender, instance, using="default", **kwargs):
    state = instance.__dict__.pop(_DELETED, None)
    values, text = state if state else (snapshot(instance, SPECS[sender])[0], _repr(instance))
    record(
        model=sender,
        object_id=instance.pk,
        object_repr=text,
        action="deleted",
        before=values,
        changed_fields=list(values),
        using=using,
    )


def _m2m_handler(field: models.ManyToManyField):
    key = f"_audit_m2m_{field.name}"

    def handler(sender, instance, action, reverse, model, pk_set, using="default", **kwargs):
        if reverse or type(instance) not in SPECS:
            return
        manager = getattr(instance, field.name)
        if action.startswith("pre_"):
            instance.__dict__[key] = sorted(manager.using(using).values_list("pk", flat=True))
            return
        old = instance.__dict__.pop(key, None)
        if old is None:
            return
        new = sorted(manager.using(using).values_list("pk", flat=True))
        if new == old:
            return
        last = instance.__dict__.get(_LAST)
        ctx = context.current()
        # Part of the same change when it follows the save of this very object in the same request (or, outside
        # requests, right after it): e.g. a form's save_m2m, or rule.channels.set() after rule.save().
        if last is not None and last[1] is ctx and timezone.now() - last[0].at < MERGE_WINDOW:
            entry = last[0]
            if entry.before is not None:
                entry.before.setdefault(field.name, old)
            entry.after = {**(entry.after or {}), field.name: new}
            if field.name not in entry.changed_fields:
                entry.changed_fields = [*entry.changed_fields, field.name]
            entry.save(update_fields=["before", "after", "changed_fields"])
            return
        entry = record(
            model=type(instance),
            object_id=instance.pk,
            object_repr=_repr(instance),
            action="updated",
            before={field.name: old},
            after={field.name: new},
            changed_fields=[field.name],
            using=using,
        )
        instance.__dict__[_LAST] = (entry, ctx)

    return handler


_M2M_HANDLERS: list = []  # strong references: signals hold receivers weakly


def connect() -> list[type[models.Model]]:
    """Connect the handlers for every audited model that is installed; returns those models."""
    connected = []
    for spec in AUDITED:
        try:
            model = apps.get_model(spec.label)
        except LookupError:
            continue
        SPECS[model] = spec
        uid = f"audit:{spec.label}"
        pre_save.connect(_pre_save, sender=model, dispatch_uid=uid)
        post_save.connect(_post_save, sender=model, dispatch_uid=uid)
        pre_delete.connect(_pre_delete, sender=model, dispatch_uid=uid)
        post_delete.connect(_post_delete, sender=model, dispatch_uid=uid)
        for field in model._meta.local_many_to_many:
            handler = _m2m_handler(field)
            _M2M_HANDLERS.append(handler)
            m2m_changed.connect(handler, sender=field.remote_field.through, dispatch_uid=f"{uid}.{field.name}")
        connected.append(model)
    return connected
