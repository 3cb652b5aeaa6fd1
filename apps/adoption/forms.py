from datetime import date

from django import forms

from apps.accounts.roles import Role
from apps.catalog.models import Location, Product
from apps.core.limits import size_text, upload_limit, upload_size_problem
from apps.kpis.models import Target

from .metrics import METRICS


class FilterForm(forms.Form):
    """The filter bar of every adoption page; an empty value means "all"."""

    product = forms.ChoiceField(required=False)
    region = forms.ChoiceField(required=False)
    store = forms.CharField(required=False, max_length=40, widget=forms.TextInput(attrs={"placeholder": "store-0001"}))
    role = forms.ChoiceField(required=False)

    def __init__(self, *args, products=(), roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].choices = [("", "All products")] + [(p.slug, p.name) for p in products]
        regions = Location.objects.filter(kind=Location.Kind.REGION).order_by("name").values_list("code", "name")
        self.fields["region"].choices = [("", "All regions"), *regions]
        self.fields["role"].choices = [("", "All roles")] + [(r, r.replace("_", " ").capitalize()) for r in roles]

    def scope_params(self) -> dict[str, str]:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return {
            "product": data.get("product") or "",
            "location": (data.get("store") or "").strip() or data.get("region") or "",
            "role": data.get("role") or "",
        }


def _month_choices(today: date, back: int = 3, ahead: int = 12) -> list[tuple[str, str]]:
    first = date(today.year, today.month, 1)
    out = []
    for i in range(-back, ahead + 1):
        y, m = divmod(first.year * 12 + first.month - 1 + i, 12)
        d = date(y, m + 1, 1)
        out.append((d.isoformat(), d.strftime("%B %Y")))
    return out


class TargetForm(forms.Form):
    kpi = forms.ChoiceField(label="KPI", choices=[(k, m.title) for k, m in METRICS.items()])
    product = forms.ModelChoiceField(queryset=Product.objects.none(), required=False, empty_label="All products")
    month = forms.TypedChoiceField(coerce=date.fromisoformat)
    value = forms.DecimalField(max_digits=24, decimal_places=6)
    direction = forms.ChoiceField(
        choices=[("", "The KPI's own (up is good)"), *Target.DirectionChoice.choices],
        required=False,
        help_text="Down is good, e.g., for a cap on trial requests when trial seats are limited.",
    )

    def __init__(self, *args, user, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        products = Product.objects.order_by("name")
        if user.role_enum != Role.ADMIN:
            products = products.owned_by(user)
            self.fields["product"].required = True
            self.fields["product"].empty_label = None
        self.fields["product"].queryset = products
        self.fields["month"].choices = _month_choices(today)


class CsvImportForm(forms.Form):
    file = forms.FileField(help_text="UTF-8 CSV with the columns listed below.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text += f" At most {size_text(upload_limit('csv'))}."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if too_large := upload_size_problem(upload, "csv"):
            raise forms.ValidationError(too_large)
        return upload


class CampaignForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.none(), empty_label=None)
    name = forms.CharField(max_length=120, help_text="e.g. “Q3 pulse”")
    question = forms.CharField(max_length=255, required=False, help_text="Empty: “How likely are you to recommend …”")
    opens_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    closes_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        products = Product.objects.order_by("name")
        if user.role_enum != Role.ADMIN:
            products = products.owned_by(user)
        self.fields["product"].queryset = products


class SurveyForm(forms.Form):
    score = forms.TypedChoiceField(
        choices=[(i, str(i)) for i in range(11)], coerce=int, widget=forms.RadioSelect, label="Your answer"
    )
    comment = forms.CharField(required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 4}))
