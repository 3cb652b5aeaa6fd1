from django import forms

from apps.core import netguard

from . import selectors
from .models import TelemetrySource


def _https_by_default(field, **kwargs):
    if field.name == "base_url":
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class TelemetrySourceForm(forms.ModelForm):
    """The admin site's form of a Prometheus source: its base URL must pass the outbound guard."""

    class Meta:
        model = TelemetrySource
        fields = [
            "name",
            "base_url",
            "enabled",
            "preset",
            "auth_header",
            "auth_env_var",
            "step_seconds",
            "pull_interval_seconds",
            "backfill_hours",
            "delay_seconds",
            "timeout_seconds",
            "max_retries",
            "retry_backoff_seconds",
        ]
        formfield_callback = _https_by_default

    def clean_base_url(self):
        value = (self.cleaned_data.get("base_url") or "").strip()
        if value and (problem := netguard.url_problem(value)):
            raise forms.ValidationError(problem)
        return value


class WorkloadFilterForm(forms.Form):
    model = forms.ModelChoiceField(queryset=None, to_field_name="slug", required=False, empty_label="All models")
    environment = forms.ModelChoiceField(
        queryset=None, to_field_name="slug", required=False, empty_label="All environments"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = selectors.models_with_telemetry()
        self.fields["environment"].queryset = selectors.environments_with_telemetry()

    def selection(self) -> dict:
        """The valid choices; an unknown slug falls back to "all" rather than failing the page."""
        if not self.is_bound:
            return {"model": None, "environment": None}
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {"model": data.get("model"), "environment": data.get("environment")}
