"""Billing pages and API: every role reads; only admins change sources, uploads, rules and units.

The unit cost and cost explorer pages themselves are listed in core.py.
"""

from apps.billing.models import AllocationRule, BillingImport, BillingSource, Reallocation

from . import (
    ADM,
    ADMIN_PAGE,
    ANON,
    API_DELETE_ADMIN,
    API_READ,
    API_UPDATE_ADMIN,
    API_WRITE_ADMIN,
    EXE,
    PAGE,
    PM,
    Route,
)

ADMIN_FORM_POST = {ANON: 302, EXE: 403, PM: 403, ADM: 200}  # 200: the admin's empty form comes back with errors
ADMIN_ACTION_POST = {ANON: 302, EXE: 403, PM: 403, ADM: 302}  # done, then back to the page
API_ACCEPTED_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 202}


def setup(users) -> None:
    source = BillingSource.objects.create(name="matrix-source", location="/data/nonexistent/matrix-billing")
    BillingImport.objects.create(
        source=source, filename="matrix.csv", trigger=BillingImport.Trigger.UPLOAD, status=BillingImport.Status.FAILED
    )
    AllocationRule.objects.create(name="matrix-rule", match="tag", tag_key="team", value="matrix", shared=True)
    Reallocation.objects.create(reason="matrix", status=Reallocation.Status.SUCCEEDED)


def _source() -> dict:
    return {"pk": BillingSource.objects.get(name="matrix-source").pk}


def _import() -> dict:
    return {"pk": BillingImport.objects.get(filename="matrix.csv").pk}


def _reallocation() -> dict:
    return {"pk": Reallocation.objects.get(reason="matrix").pk}


def _rule() -> dict:
    return {"pk": AllocationRule.objects.get(name="matrix-rule").pk}


MATRIX = [
    Route("billing:unit-cost-export", "get", PAGE),
    Route("billing:explorer-export", "get", PAGE),
    Route("billing:sources", "get", PAGE),
    Route("billing:source-create", "get", ADMIN_PAGE),
    Route("billing:source-create", "post", ADMIN_FORM_POST),
    Route("billing:source-detail", "get", PAGE, kwargs=_source),
    Route("billing:source-edit", "get", ADMIN_PAGE, kwargs=_source),
    Route("billing:source-edit", "post", ADMIN_FORM_POST, kwargs=_source),
    Route("billing:source-pull", "post", ADMIN_ACTION_POST, kwargs=_source),
    Route("billing:source-upload", "get", ADMIN_PAGE, kwargs=_source),
    Route("billing:source-upload", "post", ADMIN_FORM_POST, kwargs=_source),
    Route("billing:import-detail", "get", PAGE, kwargs=_import),
    Route("billing:import-progress", "get", PAGE, kwargs=_import),
    Route("billing:rules", "get", PAGE),
    Route("billing:rule-create", "get", ADMIN_PAGE),
    Route("billing:rule-create", "post", ADMIN_FORM_POST),
    Route("billing:rule-preview", "post", ADMIN_FORM_POST),
    Route("billing:rule-edit", "get", ADMIN_PAGE, kwargs=_rule),
    Route("billing:rule-edit", "post", ADMIN_FORM_POST, kwargs=_rule),
    Route("billing:rule-delete", "post", ADMIN_ACTION_POST, kwargs=_rule),
    Route("billing:reallocation-status", "get", PAGE),
    Route("billing:reallocate", "post", ADMIN_ACTION_POST),
    Route("billing:units", "get", PAGE),
    Route("billing:units", "post", ADMIN_FORM_POST),
    # API
    Route("billing-source-list", "get", API_READ),
    Route("billing-source-list", "post", API_WRITE_ADMIN, json=True),
    Route("billing-source-detail", "get", API_READ, kwargs=_source),
    Route("billing-source-detail", "patch", API_UPDATE_ADMIN, kwargs=_source, json=True),
    Route("billing-source-pull", "post", API_ACCEPTED_ADMIN, kwargs=_source, json=True),
    Route("billing-import-list", "get", API_READ),
    Route("billing-import-list", "post", API_WRITE_ADMIN, json=True),
    Route("billing-import-detail", "get", API_READ, kwargs=_import),
    Route("billing-rule-list", "get", API_READ),
    Route("billing-rule-list", "post", API_WRITE_ADMIN, json=True),
    Route("billing-rule-detail", "get", API_READ, kwargs=_rule),
    Route("billing-rule-detail", "patch", API_UPDATE_ADMIN, kwargs=_rule, json=True),
    Route("billing-rule-detail", "delete", API_DELETE_ADMIN, kwargs=_rule),
    Route("billing-rule-preview", "post", API_WRITE_ADMIN, json=True),
    Route("billing-reallocation-list", "get", API_READ),
    Route("billing-reallocation-list", "post", API_ACCEPTED_ADMIN, json=True),
    Route("billing-reallocation-detail", "get", API_READ, kwargs=_reallocation),
    Route("billing-units", "get", API_READ),
    Route("billing-units", "post", API_WRITE_ADMIN, json=True),
    Route("billing-unit-costs", "get", API_READ),
    Route("billing-costs", "get", API_READ),
    Route("billing-anomalies", "get", API_READ),
]
