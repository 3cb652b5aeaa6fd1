from django import forms

from .registry import KpiFilters
from .selectors import filter_choices


class KpiFilterForm(forms.Form):
    """The cuts every KPI may take; unknown values are refused with the field named."""

    service = forms.ChoiceField(required=False)
    team = forms.ChoiceField(required=False)
    environment = forms.ChoiceField(required=False)
    location = forms.ChoiceField(required=False, label="Region")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, choices in filter_choices().items():
            self.fields[name].choices = [("", "All"), *choices]

    def filters(self) -> KpiFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return KpiFilters(**{name: data.get(name) or None for name in ("service", "team", "environment", "location")})
