from django import forms

from .models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'billing export job'.")
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ)
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional expiry (UTC), e.g. 2027-01-31 00:00.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


class DigestForm(forms.Form):
    digest_subscribed = forms.BooleanField(required=False, label="Email me the weekly KPI digest")
