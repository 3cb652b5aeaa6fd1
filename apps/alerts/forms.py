"""Forms of the alert pages. Rule, silence and channel forms run the same checks as the API (validation.py)."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from apps.accounts.models import User
from apps.catalog.models import Environment, MLModel, ModelVersion, Team

from .evaluation import kpi_definitions
from .models import SCOPE_FIELDS, AlertRule, NotificationChannel, Silence
from .validation import channel_errors, normalise_rule, rule_errors, silence_errors

WINDOW_CHOICES = [
    (60, "1 hour"),
    (120, "2 hours"),
    (180, "3 hours"),
    (360, "6 hours"),
    (720, "12 hours"),
    (1440, "24 hours"),
    (4320, "3 days"),
    (10080, "7 days"),
]
LABEL_CHOICES = [(f, f) for f in SCOPE_FIELDS]
DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelVersion) -> str:
        return f"{obj.model.name} {obj.version} ({obj.get_stage_display().lower()})"


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        name = obj.get_full_name()
        return f"{name} ({obj.username})" if name else obj.username


def _add_errors(form: forms.BaseForm, errors: dict[str, list[str]]) -> None:
    for name, messages in errors.items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class AlertRuleForm(forms.ModelForm):
    kpi_key = forms.ChoiceField(required=False, label="KPI")
    group_by = forms.MultipleChoiceField(
        choices=LABEL_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="One alert per",
        help_text="The labels that make an alert instance (Prometheus' 'by'); none: one alert for the whole scope. "
        "Empty keeps the default (model, version, environment; pool for utilisation).",
    )
    window_minutes = forms.TypedChoiceField(choices=WINDOW_CHOICES, coerce=int, initial=60, label="Evaluation window")
    version = VersionChoiceField(
        queryset=ModelVersion.objects.select_related("model").order_by("model__name", "version"), required=False
    )
    owner_user = UserChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), required=False)
    escalation_user = UserChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"), required=False, label="Escalation contact"
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=NotificationChannel.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "description",
            "enabled",
            "metric",
            "kpi_key",
            "feature",
            "drift_method",
            "drift_reference",
            "drift_reference_days",
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "group_by",
            "comparison",
            "threshold",
            "recovery_threshold",
            "window_minutes",
            "consecutive_breaches",
            "no_data",
            "severity",
            "owner_user",
            "owner_team",
            "escalation_user",
            "escalate_after_minutes",
            "channels",
            "group_interval_minutes",
            "repeat_interval_minutes",
            "runbook",
        ]
        labels = {
            "consecutive_breaches": "Consecutive breaching evaluations before it fires",
            "no_data": "No data means",
            "recovery_threshold": "Recovery threshold (optional)",
            "escalate_after_minutes": "Escalate when not acknowledged within (minutes)",
            "group_interval_minutes": "Group interval (minutes)",
            "repeat_interval_minutes": "Repeat interval (minutes)",
            "runbook": "Runbook note",
        }
        help_texts = {
            "threshold": "Latency in ms; error rate, accuracy and utilisation as a share (0.05 = 5 %); throughput in "
            "requests per second; PSI (0.1 = moderate, 0.25 = major drift) or a K-S p-value.",
            "recovery_threshold": "Resolve only once the value is back past this (e.g. fire above 500 ms, recover "
            "below 400 ms). Empty: recover at the threshold.",
            "consecutive_breaches": "1 fires at the first breach; 3 waits for three evaluations in a row (about 3 "
            "minutes at the default schedule).",
            "group_interval_minutes": "Changes within this interval go out together, so a flapping rule sends one "
            "message per interval.",
            "repeat_interval_minutes": "Re-send a still-firing, unacknowledged alert after this long.",
            "runbook": "What to check and do; a URL becomes a link.",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "runbook": forms.Textarea(attrs={"rows": 4}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keys = kpi_definitions()
        self.fields["kpi_key"].choices = [("", "—")] + [(k, d.title) for k, d in keys.items()]
        for name in ("model", "environment", "service", "pool", "location", "owner_team"):
            self.fields[name].required = False
        self.fields["location"].queryset = self.fields["location"].queryset.exclude(kind="store").order_by("name")
        if not self.instance.pk and not self.is_bound:
            self.initial.setdefault("group_by", ["model", "version", "environment"])

    def _post_clean(self):
        super()._post_clean()
        if self.errors.get("metric"):
            return
        normalise_rule(self.instance)
        _add_errors(self, rule_errors(self.instance, list(self.cleaned_data.get("channels") or [])))


class PreviewOptionsForm(forms.Form):
    preview_days = forms.TypedChoiceField(
        choices=[(7, "7 days"), (30, "30 days")], coerce=int, initial=7, required=False
    )


class SilenceForm(forms.ModelForm):
    version = VersionChoiceField(
        queryset=ModelVersion.objects.select_related("model").order_by("model__name", "version"), required=False
    )

    class Meta:
        model = Silence
        fields = [
            "rule",
            "model",
            "version",
            "environment",
            "service",
            "pool",
            "location",
            "starts_at",
            "ends_at",
            "comment",
        ]
        widgets = {
            "starts_at": DATETIME_WIDGET,
            "ends_at": DATETIME_WIDGET,
            "comment": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"starts_at": "Starts (UTC)", "ends_at": "Ends (UTC)", "comment": "Why"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("rule", "model", "environment", "service", "pool", "location", "comment"):
            self.fields[name].required = False
        self.fields["location"].queryset = self.fields["location"].queryset.exclude(kind="store").order_by("name")
        if not self.instance.pk and not self.is_bound:
            now = timezone.now().replace(second=0, microsecond=0)
            self.initial.setdefault("starts_at", now)
            self.initial.setdefault("ends_at", now + timedelta(hours=2))

    def _post_clean(self):
        super()._post_clean()
        if self.instance.version_id and not self.instance.model_id:
            self.instance.model_id = self.instance.version.model_id
        if not self.errors.get("starts_at") and not self.errors.get("ends_at"):
            _add_errors(self, silence_errors(self.instance))


class EmailListField(forms.CharField):
    def to_python(self, value):
        text = super().to_python(value) or ""
        return [a.strip() for a in text.replace(";", ",").replace("\n", ",").split(",") if a.strip()]

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value


class ChannelForm(forms.ModelForm):
    email_to = EmailListField(required=False, label="Email addresses", help_text="Comma-separated.")
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="URL",
        help_text="Webhook URL, or the Alertmanager's base URL (e.g. http://alertmanager:9093).",
    )

    class Meta:
        model = NotificationChannel
        fields = [
            "name",
            "kind",
            "enabled",
            "email_to",
            "email_owner",
            "url",
            "secret_env_var",
            "send_resolved",
            "timeout_seconds",
            "max_attempts",
            "backoff_seconds",
        ]
        labels = {"secret_env_var": "Signing secret: environment variable", "email_owner": "Email the owner"}

    def clean_email_to(self):
        addresses = self.cleaned_data["email_to"]
        validator = forms.EmailField()
        bad = []
        for address in addresses:
            try:
                validator.clean(address)
            except forms.ValidationError:
                bad.append(address)
        if bad:
            raise forms.ValidationError(f"Not email addresses: {', '.join(bad)}.")
        return addresses

    def _post_clean(self):
        super()._post_clean()
        if not self.errors:
            _add_errors(self, channel_errors(self.instance))


class AcknowledgeForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class AssignForm(forms.Form):
    user = UserChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), required=False)
    team = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), required=False)
    note = forms.CharField(required=False, max_length=2000)

    def clean(self):
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("team")):
            raise forms.ValidationError("Choose a user or a team to assign the alert to (one of them).")
        return data


class AlertFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            ("open", "Open"),
            ("firing", "Firing"),
            ("pending", "Pending"),
            ("resolved", "Resolved"),
            ("all", "All"),
        ],
        required=False,
    )
    severity = forms.ChoiceField(choices=[("", "Any severity"), *AlertRule.Severity.choices], required=False)
    model = forms.ModelChoiceField(
        queryset=MLModel.objects.order_by("name"), required=False, to_field_name="slug", empty_label="Any model"
    )

    def selection(self) -> dict:
        if not self.is_valid():
            return {"state": "open", "severity": "", "model": ""}
        data = self.cleaned_data
        return {
            "state": data.get("state") or "open",
            "severity": data.get("severity") or "",
            "model": data["model"].slug if data.get("model") else "",
        }


class HealthFilterForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=MLModel.objects.order_by("name"), required=False, to_field_name="slug", empty_label="All models"
    )


class CompareForm(forms.Form):
    """Champion and challenger: two versions of one model over the page's period."""

    champion = VersionChoiceField(
        queryset=ModelVersion.objects.select_related("model").order_by("model__name", "version")
    )
    challenger = VersionChoiceField(
        queryset=ModelVersion.objects.select_related("model").order_by("model__name", "version")
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("name"), required=False, to_field_name="slug", empty_label="All"
    )

    def clean(self):
        data = super().clean()
        a, b = data.get("champion"), data.get("challenger")
        if a and b:
            if a == b:
                raise forms.ValidationError("Choose two different versions to compare.")
            if a.model_id != b.model_id:
                raise forms.ValidationError(
                    f"Champion and challenger must be versions of the same model: {a.model.name} {a.version} and "
                    f"{b.model.name} {b.version} are not."
                )
        return data
