from datetime import date

from apps.adoption.models import NpsCampaign
from apps.kpis.models import Target
from tests.factories import ProductFactory, UserFactory

from . import ADM, ANON, API_READ, EXE, PAGE, PM, Route

# The matrix product manager (pmuser) does not own this product: object-level checks answer 403.
EDIT_OTHERS = {ANON: 302, EXE: 403, PM: 403, ADM: 200}
INGEST = {ANON: 401, EXE: 400, PM: 400, ADM: 400}  # any role's write credentials; the empty body is refused


def setup(users) -> None:
    owner = UserFactory(username="matrix-adoption-pm", role=PM)
    product = ProductFactory(slug="matrix-adoption", owner=owner)
    Target.objects.create(kpi="demos", product=product, month=date(2026, 1, 1), value=10, direction="up")
    NpsCampaign.objects.create(product=product, slug="matrix-campaign", name="Matrix pulse", opens_on=date(2020, 1, 1))


def _target() -> dict:
    return {"pk": Target.objects.get(product__slug="matrix-adoption").pk}


MATRIX = [
    Route("adoption:retention", "get", PAGE),
    Route("adoption:nps", "get", PAGE),
    Route("adoption:campaign-create", "post", {ANON: 302, EXE: 403, PM: 302, ADM: 302}),  # 302: form errors as messages
    Route("adoption:locations", "get", PAGE),
    Route("adoption:targets", "get", PAGE),
    Route("adoption:targets", "post", {ANON: 302, EXE: 403, PM: 200, ADM: 200}),  # 200: the form with its errors
    Route("adoption:target-edit", "get", EDIT_OTHERS, kwargs=_target),
    Route("adoption:target-edit", "post", EDIT_OTHERS, kwargs=_target),
    Route("adoption:target-delete", "post", {ANON: 302, EXE: 403, PM: 403, ADM: 302}, kwargs=_target),
    Route("adoption:import", "get", {ANON: 302, EXE: 403, PM: 200, ADM: 200}),
    Route("adoption:import", "post", {ANON: 302, EXE: 403, PM: 200, ADM: 200}),
    Route("adoption:export", "get", PAGE, kwargs=lambda: {"kind": "summary"}),
    Route("adoption:survey", "get", PAGE, kwargs=lambda: {"slug": "matrix-campaign"}),
    Route(
        "adoption:survey", "post", {ANON: 302, EXE: 400, PM: 400, ADM: 400}, kwargs=lambda: {"slug": "matrix-campaign"}
    ),
    Route("api-events-batch", "post", INGEST, json=True),
    Route("api-nps-responses", "post", INGEST, json=True),
    Route("api-adoption-summary", "get", API_READ),
    Route("api-adoption-funnel", "get", API_READ),
    Route("api-adoption-trend", "get", API_READ),
    Route("api-adoption-retention", "get", API_READ),
    Route("api-adoption-nps", "get", API_READ),
    Route("api-adoption-breakdown", "get", API_READ),
    Route("api-adoption-target-list", "get", API_READ),
    Route("api-adoption-target-list", "post", {ANON: 401, EXE: 403, PM: 400, ADM: 400}, json=True),
    Route("api-adoption-target-detail", "get", API_READ, kwargs=_target),
    Route("api-adoption-target-detail", "patch", {ANON: 401, EXE: 403, PM: 403, ADM: 200}, kwargs=_target, json=True),
    Route("api-adoption-target-detail", "delete", {ANON: 401, EXE: 403, PM: 403, ADM: 204}, kwargs=_target),
]
