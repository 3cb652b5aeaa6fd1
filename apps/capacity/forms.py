from django import forms

from apps.catalog.models import CapacityPool, Environment

from .models import Grain


class CapacityFilterForm(forms.Form):
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="slug", required=False, empty_label="All environments"
    )
    resource_type = forms.ChoiceField(
        choices=[("", "All resources"), *CapacityPool.ResourceType.choices], required=False
    )

    def selection(self) -> dict[str, str]:
        """Slugs of the valid choices; an unknown value falls back to "all" rather than failing the page."""
        if not self.is_bound or not self.is_valid():
            return {"environment": "", "resource_type": ""}
        env = self.cleaned_data.get("environment")
        return {"environment": env.slug if env else "", "resource_type": self.cleaned_data.get("resource_type") or ""}


class GrainForm(forms.Form):
    grain = forms.ChoiceField(choices=Grain.choices, required=False)

    def selected(self) -> str:
        if self.is_bound and self.is_valid() and self.cleaned_data.get("grain"):
            return self.cleaned_data["grain"]
        return Grain.DAY
