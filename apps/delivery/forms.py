from django import forms

from apps.core.limits import upload_size_problem

from .models import DeliveryImport
from .records import SCHEMAS
from .selectors import DeliveryScope, service_choices, team_choices


class ScopeForm(forms.Form):
    """The Functionality page's cuts: a team, a service, or both (empty: everything)."""

    team = forms.ChoiceField(required=False)
    service = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All teams"), *((t.slug, t.name) for t in team_choices())]
        self.fields["service"].choices = [("", "All services"), *((s.slug, s.name) for s in service_choices())]

    def scope(self) -> DeliveryScope:
        if not self.is_valid():
            return DeliveryScope()
        return DeliveryScope(team=self.cleaned_data["team"] or None, service=self.cleaned_data["service"] or None)


class DeliveryImportForm(forms.Form):
    kind = forms.ChoiceField(choices=DeliveryImport.Kind.choices, label="What the file holds")
    file = forms.FileField(help_text="A UTF-8 CSV file with a header row; see the columns below.")
    source = forms.SlugField(
        required=False,
        help_text="The system the ids come from (default: csv). Re-importing a file from the same source "
        "updates rows in place and never duplicates them.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if too_large := upload_size_problem(upload, "csv"):
            raise forms.ValidationError(too_large)
        return upload


def column_help() -> list[tuple[str, list]]:
    return [(kind, list(schema.columns)) for kind, schema in SCHEMAS.items()]
