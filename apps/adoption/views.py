"""Adoption pages: overview (tiles, funnel, MAU trend), retention, NPS, stores/regions/roles, targets,
CSV import, NPS campaigns and the survey employees answer. Thin: selectors compute, services write."""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from apps.accounts.permissions import RoleRequiredMixin
from apps.accounts.roles import Role
from apps.catalog.models import Product
from apps.core.exceptions import ApplicationError
from apps.core.http import request_period
from apps.kpis.models import Target

from . import charts, reports, selectors, services
from .forms import CampaignForm, CsvImportForm, FilterForm, SurveyForm, TargetForm
from .metrics import BREAKDOWN_KEYS, METRICS
from .models import NpsCampaign
from .selectors import BREAKDOWNS, Scope

EDITORS = frozenset({Role.PRODUCT_MANAGER, Role.ADMIN})
ROLES_CACHE_KEY = "adoption:roles"


def _roles() -> list[str]:
    roles = cache.get(ROLES_CACHE_KEY)
    if roles is None:
        roles = selectors.role_choices(Scope(products=tuple(Product.objects.all())))
        cache.set(ROLES_CACHE_KEY, roles, 600)
    return roles


class AdoptionPage(RoleRequiredMixin, View):
    """Common to the adoption pages: the period, the filters (product, region or store, role) and tabs.

    With htmx, a filter change swaps only ``#adoption-body`` (the top bar's period picker still asks
    for the whole page).
    """

    template_name = ""
    tab = ""

    def setup_scope(self, request) -> None:
        self.period = request_period(request)
        self.as_of = timezone.now()
        products = list(Product.objects.order_by("name"))
        self.filter_form = FilterForm(request.GET or None, products=products, roles=_roles())
        try:
            self.scope = selectors.resolve_scope(**self.filter_form.scope_params())
        except ApplicationError as exc:
            messages.error(request, f"Filter ignored: {exc}.")
            self.scope = selectors.resolve_scope()
        self.can_edit = request.user.is_portal_admin or any(p.editable_by(request.user) for p in products)

    def context(self, **extra) -> dict:
        query = self.scope.as_query()
        return {
            "title": "Adoption",
            "tab": self.tab,
            "period": self.period,
            "scope": self.scope,
            "filter_form": self.filter_form,
            "query": urlencode(query),
            "can_edit": self.can_edit,
            "as_of": self.as_of,
            **extra,
        }

    def render_page(self, request, context: dict, status: int = 200) -> HttpResponse:
        template = self.template_name
        if request.htmx and request.htmx.target == "adoption-body":
            template += "#body"
        return render(request, template, context, status=status)

    def get(self, request, *args, **kwargs):
        self.setup_scope(request)
        return self.render_page(request, self.context(**self.page_context(request, *args, **kwargs)))

    def page_context(self, request, *args, **kwargs) -> dict:
        return {}


class AdoptionOverviewView(AdoptionPage):
    template_name = "adoption/overview.html"
    tab = "overview"

    def page_context(self, request, *args, **kwargs) -> dict:
        tiles = selectors.adoption_tiles(self.scope, self.period, as_of=self.as_of)
        by_key = {t.kpi.key: t for t in tiles}
        funnel = selectors.trial_funnel(self.scope, self.period)
        trend = selectors.daily_trend(self.scope, self.period, as_of=self.as_of)
        months = selectors.history(self.period)
        has_data = any(t.kpi.value for t in tiles) or any(s.users for s in funnel)
        return {
            "tiles": tiles,
            "funnel": funnel,
            "has_data": has_data,
            "fig_funnel": charts.funnel_figure(funnel),
            "fig_daily": charts.daily_trend_figure(trend),
            "fig_monthly": charts.monthly_trend_figure(
                months, by_key["mau"].kpi.sparkline, by_key["stickiness"].kpi.sparkline
            ),
        }


class RetentionView(AdoptionPage):
    template_name = "adoption/retention.html"
    tab = "retention"

    def page_context(self, request, *args, **kwargs) -> dict:
        return {"table": selectors.retention_table(self.scope, self.period, as_of=self.as_of)}


class NpsView(AdoptionPage):
    template_name = "adoption/nps.html"
    tab = "nps"

    def page_context(self, request, *args, **kwargs) -> dict:
        score = selectors.period_values(self.scope, [self.period], as_of=self.as_of, keys=["nps"])[0].nps
        distribution = selectors.nps_distribution(self.scope, self.period)
        comments = Paginator(selectors.nps_comments(self.scope, self.period), 20).get_page(request.GET.get("page"))
        campaigns = [(c, selectors.nps_for_campaign(c)) for c in selectors.nps_campaigns(self.scope)]
        return {
            "score": score,
            "distribution": distribution,
            "comments": comments,
            "campaigns": campaigns,
            "campaign_form": CampaignForm(user=request.user, initial={"opens_on": self.as_of.date()})
            if self.can_edit
            else None,
            "fig_trend": charts.nps_trend_figure(selectors.nps_trend(self.scope, self.period, as_of=self.as_of)),
            "fig_distribution": charts.nps_distribution_figure(distribution),
        }


class LocationsView(AdoptionPage):
    template_name = "adoption/locations.html"
    tab = "locations"
    PAGE_SIZE = 50

    def page_context(self, request, *args, **kwargs) -> dict:
        by = request.GET.get("by", "store")
        if by not in BREAKDOWNS:
            by = "store"
        sort = request.GET.get("sort", "-mau")
        try:
            rows = selectors.breakdown_rows(self.scope, self.period, by=by, sort=sort, as_of=self.as_of)
        except ApplicationError as exc:
            messages.error(request, str(exc))
            sort = "-mau"
            rows = selectors.breakdown_rows(self.scope, self.period, by=by, sort=sort, as_of=self.as_of)
        page = Paginator(rows, self.PAGE_SIZE).get_page(request.GET.get("page"))
        columns = [(key, METRICS[key]) for key in BREAKDOWN_KEYS]
        return {
            "by": by,
            "sort": sort,
            "page": page,
            "rows": selectors.label_breakdown(list(page.object_list), by=by),
            "columns": columns,
            "dimensions": [("store", "Stores"), ("region", "Regions"), ("role", "Roles")],
        }


class TargetsView(AdoptionPage):
    template_name = "adoption/targets.html"
    tab = "targets"

    def page_context(self, request, *args, form=None, **kwargs) -> dict:
        products = list(self.scope.products)
        targets = list(selectors.targets_for(self.scope, products=products))
        for target in targets:
            target.can_edit = self._can_edit(request.user, target)
        if form is None and self.can_edit:
            initial = {"month": self.period.start.replace(day=1).isoformat(), "product": self.scope.product}
            form = TargetForm(user=request.user, today=self.as_of.date(), initial=initial)
        status = selectors.target_tiles(targets, self.period, as_of=self.as_of)
        rows = [(t, status.get(t.pk)) for t in targets]
        return {"rows": rows, "form": form, "metrics": METRICS}

    @staticmethod
    def _can_edit(user, target: Target) -> bool:
        if target.product is None:
            return user.is_portal_admin
        return target.product.editable_by(user)

    def post(self, request):
        self.setup_scope(request)
        if request.user.role_enum not in EDITORS:
            raise PermissionDenied("Executives read targets; product managers and admins set them.")
        form = TargetForm(request.POST, user=request.user, today=self.as_of.date())
        if form.is_valid():
            try:
                target = services.adoption_target_set(actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Target saved: {METRICS[target.kpi].title}, {target.month:%B %Y}.")
                return redirect(f"{reverse('adoption:targets')}?{urlencode(self.scope.as_query())}")
        return self.render_page(request, self.context(**self.page_context(request, form=form)))


def _target_for_editor(request, pk: int) -> Target:
    """The target ``pk``, if the user may change it: 403 otherwise (checked on the object, by id)."""
    if request.user.role_enum not in EDITORS:
        raise PermissionDenied("Executives read targets; product managers and admins set them.")
    target = get_object_or_404(Target.objects.select_related("product"), pk=pk, kpi__in=list(METRICS))
    if not TargetsView._can_edit(request.user, target):
        raise PermissionDenied("Only the product's manager or an admin may change this target.")
    return target


class TargetEditView(RoleRequiredMixin, View):
    roles = EDITORS

    def _form(self, request, target, data=None):
        initial = {
            "kpi": target.kpi,
            "product": target.product,
            "month": target.month.isoformat(),
            "value": target.value.normalize(),
            "direction": target.direction,
        }
        return TargetForm(data, user=request.user, today=timezone.localdate(), initial=initial)

    def get(self, request, pk: int):
        target = _target_for_editor(request, pk)
        return render(request, "adoption/target_edit.html", {"target": target, "form": self._form(request, target)})

    def post(self, request, pk: int):
        target = _target_for_editor(request, pk)
        form = self._form(request, target, request.POST)
        if form.is_valid():
            try:
                services.adoption_target_set(actor=request.user, target=target, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Target updated.")
                return redirect("adoption:targets")
        return render(request, "adoption/target_edit.html", {"target": target, "form": form})


class TargetDeleteView(RoleRequiredMixin, View):
    roles = EDITORS

    def post(self, request, pk: int):
        target = _target_for_editor(request, pk)
        services.adoption_target_delete(actor=request.user, target=target)
        messages.success(request, f"Target deleted: {METRICS[target.kpi].title}, {target.month:%B %Y}.")
        return redirect("adoption:targets")


class ImportView(AdoptionPage):
    template_name = "adoption/import.html"
    tab = "import"
    roles = EDITORS
    MAX_ERRORS_SHOWN = 50

    def page_context(self, request, *args, form=None, errors=None, more=0, **kwargs) -> dict:
        return {
            "form": form or CsvImportForm(),
            "errors": errors or [],
            "more_errors": more,
            "columns": services.CSV_COLUMNS,
            "products": Product.objects.order_by("name")
            if request.user.is_portal_admin
            else Product.objects.owned_by(request.user).order_by("name"),
        }

    def post(self, request):
        self.setup_scope(request)
        form = CsvImportForm(request.POST, request.FILES)
        errors, more = [], 0
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = services.events_import_csv(upload.read(), actor=request.user, filename=upload.name)
            except ApplicationError as exc:
                errors = [str(exc)]
            else:
                if result.ok:
                    messages.success(
                        request,
                        f"{upload.name}: {result.accepted:,} events imported, {result.duplicates:,} already there.",
                    )
                    return redirect("adoption:import")
                shown = result.errors[: self.MAX_ERRORS_SHOWN]
                errors = [services.format_error(e, filename=upload.name) for e in shown]
                more = len(result.errors) - len(shown)
        ctx = self.page_context(request, form=form, errors=errors, more=more)
        return self.render_page(request, self.context(**ctx), status=400 if errors else 200)


class CampaignCreateView(RoleRequiredMixin, View):
    roles = EDITORS

    def post(self, request):
        form = CampaignForm(request.POST, user=request.user)
        if not form.is_valid():
            for field, errs in form.errors.items():
                messages.error(request, f"{field}: {' '.join(errs)}")
            return redirect("adoption:nps")
        try:
            campaign = services.nps_campaign_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            messages.error(request, str(exc))
            return redirect("adoption:nps")
        link = request.build_absolute_uri(reverse("adoption:survey", args=[campaign.slug]))
        messages.success(request, f"Campaign “{campaign.name}” created. Share its survey link: {link}")
        return redirect(f"{reverse('adoption:nps')}?product={campaign.product.slug}")


class SurveyView(RoleRequiredMixin, View):
    """The survey an employee opens from a campaign link: 0-10 and a comment, once per campaign."""

    def _campaign(self, slug: str) -> NpsCampaign:
        return get_object_or_404(NpsCampaign.objects.select_related("product"), slug=slug)

    def _render(self, request, campaign, form, status=200):
        context = {
            "campaign": campaign,
            "form": form,
            "answer": selectors.respondent_answer(campaign, request.user.get_username()),
            "is_open": campaign.is_open_on(timezone.localdate()),
            "title": campaign.name,
        }
        return render(request, "adoption/survey.html", context, status=status)

    def get(self, request, slug: str):
        return self._render(request, self._campaign(slug), SurveyForm())

    def post(self, request, slug: str):
        campaign = self._campaign(slug)
        form = SurveyForm(request.POST)
        if form.is_valid():
            try:
                services.nps_response_submit(
                    campaign=campaign,
                    respondent=request.user.get_username(),
                    score=form.cleaned_data["score"],
                    comment=form.cleaned_data["comment"],
                )
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Thank you: your answer is recorded.")
                return redirect("adoption:survey", slug=slug)
        return self._render(request, campaign, form, status=400)


class ExportView(AdoptionPage):
    """The page's figures as CSV: the same selectors and rows as the page and the API."""

    def get(self, request, kind: str):
        if kind not in reports.COLUMNS:
            raise Http404(f"no export {kind!r}")
        self.setup_scope(request)
        scope, period, as_of = self.scope, self.period, self.as_of
        match kind:
            case "summary":
                rows = reports.summary_rows(selectors.adoption_tiles(scope, period, as_of=as_of))
            case "funnel":
                rows = reports.funnel_rows(selectors.trial_funnel(scope, period))
            case "trend":
                rows = reports.trend_rows(selectors.daily_trend(scope, period, as_of=as_of))
            case "retention":
                rows = reports.retention_rows(selectors.retention_table(scope, period, as_of=as_of))
            case "locations":
                by = request.GET.get("by", "store")
                if by not in BREAKDOWNS:
                    raise Http404(f"no breakdown by {by!r}")
                qs = selectors.breakdown_rows(scope, period, by=by, sort=request.GET.get("sort", "-mau"), as_of=as_of)
                rows = reports.breakdown_export_rows(selectors.label_breakdown(list(qs), by=by))
            case _:
                rows = reports.nps_response_rows(
                    selectors.nps_responses(scope, period).select_related("campaign__product")
                )
        response = HttpResponse(reports.to_csv(rows, reports.COLUMNS[kind]), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="adoption-{kind}-{period.key}.csv"'
        return response
