"""Reads of the audit trail, for its page, its CSV export and its API."""

from datetime import datetime, time, timedelta

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEntry
from .registry import AUDITED


def audited_models() -> list[tuple[str, str]]:
    """(value, label) for each audited model that is installed, e.g. ("billing.billingsource", "Billing · source")."""
    choices = []
    for spec in AUDITED:
        try:
            model = apps.get_model(spec.label)
        except LookupError:
            continue
        meta = model._meta
        choices.append((meta.label_lower, f"{apps.get_app_config(meta.app_label).verbose_name} · {meta.verbose_name}"))
    return sorted(choices, key=lambda c: c[1].lower())


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def audit_entries(
    *,
    model: str = "",
    actor: str = "",
    action: str = "",
    via: str = "",
    date_from=None,
    date_to=None,
    object_id: str = "",
    q: str = "",
) -> QuerySet[AuditEntry]:
    """Entries newest first, filtered. ``model`` is "app_label.modelname"; ``date_to`` is inclusive."""
    qs = AuditEntry.objects.select_related("content_type").order_by("-at", "-pk")
    if model:
        app_label, _, model_name = model.partition(".")
        ct = ContentType.objects.filter(app_label=app_label, model=model_name).first()
        if ct is None:
            return qs.none()
        qs = qs.filter(content_type=ct)
    if actor:
        qs = qs.filter(actor_name__iexact=actor)
    if action:
        qs = qs.filter(action=action)
    if via:
        qs = qs.filter(via=via)
    if date_from:
        qs = qs.filter(at__gte=_day_start(date_from))
    if date_to:
        qs = qs.filter(at__lt=_day_start(date_to + timedelta(days=1)))
    if object_id:
        qs = qs.filter(object_id=object_id)
    if q:
        qs = qs.filter(object_repr__icontains=q)
    return qs


def actor_names() -> list[str]:
    return list(AuditEntry.objects.order_by("actor_name").values_list("actor_name", flat=True).distinct())


def related_labels(entry: AuditEntry) -> dict[str, str]:
    """For the detail page: the current name of each object a changed foreign key pointed to, by "field:pk"."""
    model = entry.content_type.model_class()
    if model is None:
        return {}
    labels = {}
    for field in model._meta.concrete_fields:
        if not field.is_relation or field.related_model is None:
            continue
        ids = {v for v in ((entry.before or {}).get(field.name), (entry.after or {}).get(field.name)) if v is not None}
        if not ids:
            continue
        found = field.related_model._base_manager.in_bulk(list(ids))
        labels.update({f"{field.name}:{pk}": str(obj) for pk, obj in found.items()})
    return labels
