"""Alert pages: alerts and their timeline, rules with their preview, silences, channels, the audit trail and the
model health page. Every role reads; admins change rules, silences and channels; an alert's owner (or an admin)
acknowledges and reassigns it."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from apps.accounts.permissions import AdminRequiredMixin, RoleRequiredMixin
from apps.core.exceptions import ApplicationError
from apps.core.http import request_period
from apps.kpis.registry import KpiFilters

from . import charts, kpis, selectors, services
from .forms import (
    AcknowledgeForm,
    AlertFilterForm,
    AlertRuleForm,
    AssignForm,
    ChannelForm,
    CompareForm,
    HealthFilterForm,
    PreviewOptionsForm,
    SilenceForm,
)
from .models import SCOPE_FIELDS, Alert, AlertRule, AuditEntry, NotificationChannel, Silence
from .permissions import can_act_on_alert
from .preview import rule_preview


def _form_errors_to(form, exc: ValidationError) -> None:
    for name, errors in exc.message_dict.items():
        for error in errors:
            form.add_error(name if name in form.fields else None, error)


def _partial(request, template: str, target: str) -> str:
    if request.htmx and not request.htmx.boosted and request.htmx.target == target:
        return f"{template}#{target.removeprefix('alerts-')}"
    return template


# Alerts ------------------------------------------------------------------------------------------------------


class AlertListView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/list.html"

    def get_template_names(self):
        return [_partial(self.request, self.template_name, "alerts-results")]

    def get_context_data(self, **kwargs):
        form = AlertFilterForm(self.request.GET or None)
        chosen = form.selection()
        page = Paginator(selectors.alert_list(**chosen), 50).get_page(self.request.GET.get("page"))
        return super().get_context_data(
            title="Alerts",
            form=form,
            chosen=chosen,
            page=page,
            counts=selectors.alert_counts(),
            evaluator=selectors.evaluator_status(),
            rule_count=AlertRule.objects.filter(enabled=True).count(),
            **kwargs,
        )


class AlertDetailView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/detail.html"

    def get_context_data(self, pk, **kwargs):
        alert = get_object_or_404(Alert, pk=pk)
        alert = selectors.alert_detail(alert.pk)
        silence_query = "&".join(f"{f}={getattr(alert, f'{f}_id')}" for f in SCOPE_FIELDS if getattr(alert, f"{f}_id"))
        return super().get_context_data(
            title=f"Alert {alert.pk}",
            alert=alert,
            rule=alert.rule,
            timeline=selectors.alert_timeline(alert),
            notifications=selectors.alert_notifications(alert),
            can_act=can_act_on_alert(self.request.user, alert),
            ack_form=kwargs.pop("ack_form", None) or AcknowledgeForm(),
            assign_form=kwargs.pop("assign_form", None) or AssignForm(),
            silence_query=f"rule={alert.rule_id or ''}&{silence_query}",
            **kwargs,
        )


class _AlertActionView(RoleRequiredMixin, View):
    def _alert(self, request, pk) -> Alert:
        alert = get_object_or_404(Alert, pk=pk)
        if not can_act_on_alert(request.user, alert):
            raise PermissionDenied("Only an admin or the alert's owner may acknowledge or reassign it.")
        return alert

    def _back(self, request, pk, **forms):
        view = AlertDetailView()
        view.setup(request, pk=pk)
        return render(request, "alerts/detail.html", view.get_context_data(pk=pk, **forms), status=400)


class AlertAcknowledgeView(_AlertActionView):
    def post(self, request, pk):
        alert = self._alert(request, pk)
        form = AcknowledgeForm(request.POST)
        if not form.is_valid():
            return self._back(request, pk, ack_form=form)
        try:
            services.alert_acknowledge(alert=alert, actor=request.user, note=form.cleaned_data["note"])
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Alert {alert.pk} acknowledged: escalation and repeat notifications stop.")
        return redirect("alerts:detail", pk=alert.pk)


class AlertAssignView(_AlertActionView):
    def post(self, request, pk):
        alert = self._alert(request, pk)
        form = AssignForm(request.POST)
        if not form.is_valid():
            return self._back(request, pk, assign_form=form)
        data = form.cleaned_data
        try:
            services.alert_assign(
                alert=alert, actor=request.user, user=data["user"], team=data["team"], note=data["note"]
            )
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Alert {alert.pk} assigned to {data['user'] or data['team']}.")
        return redirect("alerts:detail", pk=alert.pk)


# Rules -------------------------------------------------------------------------------------------------------


class RuleListView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/rules.html"

    def get_context_data(self, **kwargs):
        page = Paginator(selectors.rule_list(), 100).get_page(self.request.GET.get("page"))
        return super().get_context_data(title="Alert rules", page=page, **kwargs)


class RuleDetailView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/rule_detail.html"

    def get_context_data(self, pk, **kwargs):
        rule = get_object_or_404(AlertRule, pk=pk)
        rule = selectors.rule_with_history(rule.pk)
        days = 30 if self.request.GET.get("days") == "30" else 7
        preview = rule_preview(rule, days=days)
        return super().get_context_data(
            title=rule.name,
            rule=rule,
            days=days,
            preview=preview,
            preview_fig=charts.preview_figure(preview),
            alerts=selectors.rule_recent_alerts(rule),
            audit=selectors.audit_list(target_type=AuditEntry.Target.RULE, target_id=rule.pk)[:30],
            evaluator=selectors.evaluator_status(),
            **kwargs,
        )


def _preview_context(form: AlertRuleForm, options: PreviewOptionsForm) -> dict:
    days = (options.cleaned_data.get("preview_days") or 7) if options.is_valid() else 7
    preview = rule_preview(form.instance, days=days)
    return {"preview": preview, "preview_fig": charts.preview_figure(preview), "days": days}


class RuleFormView(AdminRequiredMixin, View):
    """Create or edit a rule. "Preview" replays it over the stored history without saving (htmx or plain)."""

    template_name = "alerts/rule_form.html"

    def _rule(self, pk):
        return get_object_or_404(AlertRule, pk=pk) if pk else None

    def get(self, request, pk=None):
        rule = self._rule(pk)
        return render(
            request,
            self.template_name,
            {"form": AlertRuleForm(instance=rule), "rule": rule, "options": PreviewOptionsForm()},
        )

    def post(self, request, pk=None):
        rule = self._rule(pk)
        form = AlertRuleForm(request.POST, instance=rule)
        options = PreviewOptionsForm(request.POST)
        context = {"form": form, "rule": rule, "options": options}
        if not form.is_valid():
            return render(request, self.template_name, context, status=400)
        if request.POST.get("action") == "preview":
            context.update(_preview_context(form, options))
            return render(request, self.template_name, context)
        try:
            saved = services.rule_save(
                rule=form.instance, channels=list(form.cleaned_data["channels"]), actor=request.user
            )
        except ValidationError as exc:
            _form_errors_to(form, exc)
            return render(request, self.template_name, context, status=400)
        messages.success(request, f"Rule {saved.name} saved; it is evaluated from the next minute.")
        return redirect("alerts:rule-detail", pk=saved.pk)


class RulePreviewView(AdminRequiredMixin, View):
    """The htmx preview: when the rule in the form would have fired, or what is wrong with it. Never saves."""

    def post(self, request):
        pk = request.POST.get("rule_id") or None
        rule = get_object_or_404(AlertRule, pk=pk) if pk else None
        form = AlertRuleForm(request.POST, instance=rule)
        options = PreviewOptionsForm(request.POST)
        context = {"form": form, "rule": rule, "options": options}
        if form.is_valid():
            context.update(_preview_context(form, options))
        return render(request, "alerts/rule_form.html#preview", context)


class RuleDeleteView(AdminRequiredMixin, View):
    def post(self, request, pk):
        rule = get_object_or_404(AlertRule, pk=pk)
        name = rule.name
        services.rule_delete(rule=rule, actor=request.user)
        messages.success(request, f"Rule {name} deleted; its alerts stay in the history.")
        return redirect("alerts:rules")


# Silences ----------------------------------------------------------------------------------------------------


class SilenceListView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/silences.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(title="Silences", silences=selectors.silence_list(), **kwargs)


class SilenceFormView(AdminRequiredMixin, View):
    template_name = "alerts/silence_form.html"

    def _silence(self, pk):
        return get_object_or_404(Silence, pk=pk) if pk else None

    def get(self, request, pk=None):
        silence = self._silence(pk)
        initial = {}
        if silence is None:
            for name in ("rule", *SCOPE_FIELDS):
                if request.GET.get(name, "").isdigit():
                    initial[name] = int(request.GET[name])
        form = SilenceForm(instance=silence, initial=initial)
        return render(request, self.template_name, {"form": form, "silence": silence})

    def post(self, request, pk=None):
        silence = self._silence(pk)
        form = SilenceForm(request.POST, instance=silence)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "silence": silence}, status=400)
        try:
            saved = services.silence_save(silence=form.instance, actor=request.user)
        except ValidationError as exc:
            _form_errors_to(form, exc)
            return render(request, self.template_name, {"form": form, "silence": silence}, status=400)
        messages.success(request, f"Silence {saved.pk} saved until {saved.ends_at:%Y-%m-%d %H:%M} UTC.")
        return redirect("alerts:silences")


class SilenceExpireView(AdminRequiredMixin, View):
    def post(self, request, pk):
        silence = get_object_or_404(Silence, pk=pk)
        try:
            services.silence_expire(silence=silence, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Silence {silence.pk} ended; muted alerts that still fire will notify.")
        return redirect("alerts:silences")


class SilenceDeleteView(AdminRequiredMixin, View):
    def post(self, request, pk):
        silence = get_object_or_404(Silence, pk=pk)
        services.silence_delete(silence=silence, actor=request.user)
        messages.success(request, "Silence deleted.")
        return redirect("alerts:silences")


# Channels ----------------------------------------------------------------------------------------------------


class ChannelListView(AdminRequiredMixin, TemplateView):
    template_name = "alerts/channels.html"

    def get_context_data(self, **kwargs):
        channels = NotificationChannel.objects.order_by("name")
        return super().get_context_data(title="Notification channels", channels=channels, **kwargs)


class ChannelFormView(AdminRequiredMixin, View):
    template_name = "alerts/channel_form.html"

    def _channel(self, pk):
        return get_object_or_404(NotificationChannel, pk=pk) if pk else None

    def get(self, request, pk=None):
        channel = self._channel(pk)
        return render(request, self.template_name, {"form": ChannelForm(instance=channel), "channel": channel})

    def post(self, request, pk=None):
        channel = self._channel(pk)
        form = ChannelForm(request.POST, instance=channel)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "channel": channel}, status=400)
        try:
            saved = services.channel_save(channel=form.instance, actor=request.user)
        except ValidationError as exc:
            _form_errors_to(form, exc)
            return render(request, self.template_name, {"form": form, "channel": channel}, status=400)
        messages.success(request, f"Channel {saved.name} saved.")
        return redirect("alerts:channels")


class ChannelDeleteView(AdminRequiredMixin, View):
    def post(self, request, pk):
        channel = get_object_or_404(NotificationChannel, pk=pk)
        services.channel_delete(channel=channel, actor=request.user)
        messages.success(request, f"Channel {channel.name} deleted.")
        return redirect("alerts:channels")


class ChannelTestView(AdminRequiredMixin, View):
    def post(self, request, pk):
        from .tasks import deliver_notification_task

        channel = get_object_or_404(NotificationChannel, pk=pk)
        notification = services.channel_test(channel=channel, actor=request.user)
        deliver_notification_task.delay_on_commit(notification.pk)
        messages.success(request, f"Test message to {channel.name} queued; its attempts appear below.")
        return redirect(f"{reverse('alerts:channels')}#channel-{channel.pk}")


# Audit and model health --------------------------------------------------------------------------------------


class AuditView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/audit.html"

    def get_context_data(self, **kwargs):
        target = self.request.GET.get("target", "")
        if target not in AuditEntry.Target.values:
            target = ""
        entries = selectors.audit_list(target_type=target)
        if not self.request.GET.get("evaluator"):
            entries = entries.exclude(actor_name=services.EVALUATOR)
        page = Paginator(entries, 100).get_page(self.request.GET.get("page"))
        return super().get_context_data(
            title="Audit trail",
            page=page,
            target=target,
            targets=AuditEntry.Target.choices,
            evaluator=bool(self.request.GET.get("evaluator")),
            **kwargs,
        )


def _compare_defaults(model) -> dict:
    """With a model chosen: its production version against its newest other live version."""
    if model is None:
        return {}
    versions = list(model.versions.exclude(stage="archived").order_by("-created_at"))
    champion = next((v for v in versions if v.stage == "production"), None)
    challenger = next((v for v in versions if v != champion), None)
    return {"champion": champion, "challenger": challenger} if champion and challenger else {}


class ModelHealthView(RoleRequiredMixin, TemplateView):
    template_name = "alerts/model_health.html"

    def get_template_names(self):
        return [_partial(self.request, self.template_name, "alerts-health")]

    def get_context_data(self, **kwargs):
        period = request_period(self.request)
        form = HealthFilterForm(self.request.GET or None)
        model = form.cleaned_data.get("model") if form.is_valid() else None
        rows = selectors.model_health(start=period.start, end=period.end, model=model)
        selected = next((r for r in rows if r.key == self.request.GET.get("row")), None)
        if selected is None and model is not None:
            selected = next((r for r in rows if r.workload is not None), None)
        context = {
            "title": "Model health",
            "form": form,
            "rows": rows,
            "selected": selected,
            "sla": kpis.model_sla(period, KpiFilters()),
            "compare_form": CompareForm(
                self.request.GET if "champion" in self.request.GET else None, initial=_compare_defaults(model)
            ),
        }
        if selected is not None and selected.workload is not None:
            lines = selectors.threshold_lines(
                model=selected.model, version=selected.version, environment=selected.environment
            )
            series = [(selected.workload.key.label, selected.workload)]
            context["latency_fig"] = charts.latency_figure(series, lines)
            context["error_fig"] = charts.error_rate_figure(series, lines)
        compare_form = context["compare_form"]
        if compare_form.is_bound and compare_form.is_valid():
            data = compare_form.cleaned_data
            comparison = selectors.champion_challenger(
                model=data["champion"].model,
                champion=data["champion"],
                challenger=data["challenger"],
                environment=data["environment"],
                start=period.start,
                end=period.end,
            )
            context["comparison"] = comparison
            pairs = [
                (f"{v.version} ({role})", w)
                for v, w, role in (
                    (comparison.champion, comparison.champion_workload, "champion"),
                    (comparison.challenger, comparison.challenger_workload, "challenger"),
                )
                if w is not None
            ]
            context["comparison_fig"] = charts.comparison_figure(pairs)
        return super().get_context_data(**context, **kwargs)
