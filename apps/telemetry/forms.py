from django import forms

from . import selectors


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
