from django import forms

from .models import AuditEntry
from .selectors import audited_models


class AuditFilterForm(forms.Form):
    """The audit trail's filters, for the page, its CSV export and the API alike."""

    model = forms.ChoiceField(required=False, label="Type")
    actor = forms.CharField(
        required=False, max_length=150, label="Who", widget=forms.TextInput(attrs={"list": "audit-actors"})
    )
    action = forms.ChoiceField(required=False, choices=[("", "any"), *AuditEntry.Action.choices])
    via = forms.ChoiceField(required=False, choices=[("", "any"), *AuditEntry.Via.choices])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    q = forms.CharField(required=False, max_length=200, label="Object name contains")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "every type"), *audited_models()]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            raise forms.ValidationError(f"'To' ({end.isoformat()}) is before 'From' ({start.isoformat()}).")
        return data

    def filters(self) -> dict:
        """The valid filters as keyword arguments of :func:`apps.audit.selectors.audit_entries`."""
        self.is_valid()
        data = dict(self.cleaned_data)
        if self.non_field_errors():
            data.pop("date_from", None), data.pop("date_to", None)
        return {k: v for k, v in data.items() if v not in (None, "")}
