"""The audit trail under Settings (admins only): the list with filters, one entry's changes, a CSV export."""

import json

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin
from apps.core.csvexport import csv_response

from . import selectors
from .forms import AuditFilterForm
from .models import AuditEntry

PAGE_SIZE = 50
CSV_HEADER = [
    "at",
    "actor",
    "token",
    "via",
    "ip",
    "action",
    "type",
    "object_id",
    "object",
    "changed_fields",
    "before",
    "after",
]


class AuditListView(AdminRequiredMixin, TemplateView):
    template_name = "audit/list.html"

    def get_context_data(self, **kwargs):
        form = AuditFilterForm(self.request.GET)
        filters = form.filters()
        page = Paginator(selectors.audit_entries(**filters), PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            title="Audit trail",
            form=form,
            page=page,
            query=query.urlencode(),
            actors=selectors.actor_names(),
            **kwargs,
        )


class AuditDetailView(AdminRequiredMixin, TemplateView):
    template_name = "audit/detail.html"

    def get_context_data(self, **kwargs):
        entry = get_object_or_404(AuditEntry.objects.select_related("content_type", "actor"), pk=self.kwargs["pk"])
        labels = selectors.related_labels(entry)
        rows = []
        before, after = entry.before or {}, entry.after or {}
        for name in [*after, *(k for k in before if k not in after)]:
            rows.append(
                {
                    "field": name,
                    "before": before.get(name),
                    "after": after.get(name),
                    "before_label": labels.get(f"{name}:{before.get(name)}", ""),
                    "after_label": labels.get(f"{name}:{after.get(name)}", ""),
                    "changed": name in entry.changed_fields,
                }
            )
        history = selectors.audit_entries(
            model=entry.content_type.app_label + "." + entry.content_type.model, object_id=entry.object_id
        )[:20]
        return super().get_context_data(title="Audit entry", entry=entry, rows=rows, history=history, **kwargs)


def _json(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


class AuditExportView(AdminRequiredMixin, View):
    def get(self, request):
        entries = selectors.audit_entries(**AuditFilterForm(request.GET).filters())
        rows = (
            [
                e.at.isoformat(),
                e.actor_name,
                e.token_name,
                e.via,
                e.ip or "",
                e.action,
                e.content_type.app_label + "." + e.content_type.model,
                e.object_id,
                e.object_repr,
                " ".join(e.changed_fields),
                _json(e.before),
                _json(e.after),
            ]
            for e in entries.iterator(chunk_size=2000)
        )
        return csv_response("audit-trail.csv", CSV_HEADER, rows)
