"""Forms of the billing pages, and the checks the API shares with them (one wording for every error)."""

import glob
import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath
from urllib.parse import urlparse

from django import forms
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from apps.catalog.models import Environment, Location, Service
from apps.core import netguard
from apps.core.limits import upload_size_problem

from .formats import FORMATS
from .models import AllocationRule, BillingSource
from .reports import COST_CHOICES, DIMENSIONS, GRAINS

FILE_KINDS = "CSV (optionally gzip-compressed) or Parquet"
ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- Checks shared with the API ------------------------------------------------------------------------


def location_problem(value: str) -> str | None:
    """Why a source location is unusable, or None. Empty means the source takes uploads only."""
    if not value:
        return None
    if "://" in value:
        scheme = urlparse(value).scheme.lower()
        if scheme not in ("http", "https"):
            return (
                f"{scheme}:// is not supported; give a local folder, a glob such as /data/exports/*.csv.gz, "
                "or an http(s) URL"
            )
        if not urlparse(value).netloc:
            return f"{value!r} has no host name (expected e.g. https://exports.example.com/focus.csv.gz)"
        if urlparse(value).username or urlparse(value).password:
            return (
                "the URL carries a user name or password, which would be stored in the database; remove them, put "
                "the credential in an environment variable and name it as the authentication variable"
            )
        return netguard.url_problem(value)
    return local_path_problem(value)


def local_path_problem(value: str) -> str | None:
    """Why a local folder or glob may not be read, or None: an absolute path inside BILLING_LOCAL_ROOTS."""
    if not PurePosixPath(value).is_absolute():
        return f"{value!r} is not an absolute path (expected a folder or glob starting with /, or an http(s) URL)"
    if ".." in PurePosixPath(value).parts:
        return f"{value!r} holds a '..' component; give the folder's own path"
    roots = [os.path.realpath(root) for root in settings.BILLING_LOCAL_ROOTS]
    if not any(inside(value, root) for root in roots):
        allowed = ", ".join(roots) or "none are configured"
        return (
            f"{value!r} is outside the folders billing exports may be read from ({allowed}); "
            "the operator adds folders with OPSPORTAL_BILLING_LOCAL_ROOTS"
        )
    return None


def inside(path: str, root: str) -> bool:
    """Whether a path (a glob: its part before the first wildcard) lies in ``root``, symbolic links resolved."""
    fixed = []
    for part in PurePosixPath(path).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    real = os.path.realpath(os.path.join(*fixed)) if fixed else "/"
    return real == root or real.startswith(root.rstrip("/") + "/")


def auth_env_var_problem(value: str, location: str) -> str | None:
    """The field holds the NAME of an environment variable, never a credential."""
    if not value:
        return None
    if not ENV_VAR.fullmatch(value):
        return (
            f"{value[:12]!r}{'...' if len(value) > 12 else ''} is not an environment variable name: give the NAME "
            "of the variable that holds the Authorization header (letters, digits and _, e.g. BILLING_EXPORT_TOKEN), "
            "never the credential itself"
        )
    if not location.startswith(("http://", "https://")):
        return "an authentication variable is only used for http(s) URLs; this source's location is not one"
    return None


def billing_file_problem(upload) -> str | None:
    """A quick look at an upload's first bytes, so an obviously wrong file is refused before it is stored."""
    name = getattr(upload, "name", "the file")
    if too_large := upload_size_problem(upload, "billing"):
        return too_large
    if not upload.size:
        return f"{name} is empty (expected {FILE_KINDS})"
    head = upload.read(4)
    upload.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return f"{name} is a ZIP archive (an Excel workbook?); expected {FILE_KINDS}"
    if head.startswith(b"%PDF"):
        return f"{name} is a PDF document; expected {FILE_KINDS}"
    return None


def parse_weights(text: str | dict) -> tuple[dict[str, Decimal], list[str]]:
    """Weights as JSON ({"price-forecast": 2}) or ``slug=weight`` pairs separated by commas or lines."""
    if isinstance(text, dict):
        pairs = list(text.items())
    else:
        text = (text or "").strip()
        if not text:
            return {}, []
        if text.startswith("{"):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                return {}, [f"weights are not valid JSON ({exc.msg} at character {exc.pos + 1})"]
            if not isinstance(loaded, dict):
                return {}, ['weights must be a JSON object such as {"price-forecast": 2, "promotions": 1}']
            pairs = list(loaded.items())
        else:
            pairs = []
            for part in re.split(r"[,\n]", text):
                if not part.strip():
                    continue
                if "=" not in part:
                    return {}, [f"{part.strip()!r} is not slug=weight (expected e.g. price-forecast=2, promotions=1)"]
                slug, weight = part.split("=", 1)
                pairs.append((slug.strip(), weight.strip()))
    known = set(Service.objects.values_list("slug", flat=True))
    weights, problems = {}, []
    for slug, raw in pairs:
        if slug not in known:
            problems.append(f"{slug!r} is not a known service (known: {', '.join(sorted(known)) or 'none'})")
            continue
        try:
            weight = Decimal(str(raw))
            if not weight.is_finite() or weight <= 0:
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"the weight {raw!r} of {slug} is not a number above 0")
            continue
        weights[slug] = weight
    return weights, problems


def weights_json(weights: dict[str, Decimal]) -> dict[str, int | float]:
    """Weights as JSON numbers for the rule's JSON field (whole numbers stay whole)."""
    return {slug: int(w) if w == w.to_integral_value() else float(w) for slug, w in weights.items()}


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    if connection.vendor == "postgresql":
        # PostgreSQL runs the match and its regular expressions differ from Python's in places.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT '' ~ %s", [pattern])
        except DatabaseError as exc:
            return f"{pattern!r} is not a regular expression the database accepts: {str(exc).splitlines()[0]}"
    return None


def rule_problems(rule: AllocationRule, weights_problems: list[str] | None = None) -> dict[str, list[str]]:
    """Everything wrong with an (unsaved) allocation rule, per field, in words an admin can act on."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    value = (rule.value or "").strip()
    if not value:
        add("value", "give the value to compare (for a resource rule, a regular expression)")
    match rule.match:
        case AllocationRule.Match.TAG:
            key = rule.tag_key or ""
            if not key.strip():
                add("tag_key", "a tag rule needs the tag's key, e.g. service")
            elif "__" in key:
                add(
                    "tag_key",
                    f"the tag key {key!r} contains '__', which tag lookups read as a path separator, so no rule can "
                    "match it; match on another tag, the sub-account or the resource instead",
                )
            elif key != key.strip():
                add("tag_key", f"the tag key {key!r} has leading or trailing spaces (tag keys are trimmed on import)")
        case AllocationRule.Match.RESOURCE:
            if value and (problem := _regex_problem(value)):
                add("value", problem)
        case AllocationRule.Match.SUB_ACCOUNT | AllocationRule.Match.SERVICE_NAME:
            pass
        case _:
            add("match", f"{rule.match!r} is not one of: {', '.join(AllocationRule.Match.values)}")
    if rule.match != AllocationRule.Match.TAG and rule.tag_key:
        add("tag_key", "only tag rules use a tag key; leave it empty")
    if rule.shared:
        if rule.service_id:
            add("service", "a shared rule spreads its cost over services; leave the service empty")
        if rule.spread == AllocationRule.Spread.WEIGHTS and not rule.weights and not weights_problems:
            add("weights", "a shared rule spread by fixed weights needs weights, e.g. price-forecast=2, promotions=1")
        if rule.spread != AllocationRule.Spread.WEIGHTS and rule.weights:
            add(
                "weights",
                'weights are only used when the spread is "By fixed weights"; clear them or change the spread',
            )
    else:
        if not rule.service_id:
            add("service", "choose the service this rule assigns cost to (or mark the rule shared)")
        if rule.weights:
            add("weights", "only shared rules spread cost by weights; clear them or mark the rule shared")
    for message in weights_problems or []:
        add("weights", message)
    return problems


# --- Sources and uploads ---------------------------------------------------------------------------------


class BillingSourceForm(forms.ModelForm):
    class Meta:
        model = BillingSource
        fields = ["name", "format", "location", "auth_env_var", "pull_every_minutes", "enabled"]
        labels = {
            "auth_env_var": "Authorization variable (name only)",
            "pull_every_minutes": "Pull every (minutes)",
        }
        widgets = {"location": forms.TextInput(attrs={"size": 60})}

    def clean_location(self):
        value = self.cleaned_data["location"].strip()
        if problem := location_problem(value):
            raise forms.ValidationError(problem)
        return value

    def clean(self):
        cleaned = super().clean()
        name = (cleaned.get("auth_env_var") or "").strip()
        if problem := auth_env_var_problem(name, cleaned.get("location") or ""):
            self.add_error("auth_env_var", problem)
        cleaned["auth_env_var"] = name
        return cleaned


def format_choices() -> list[tuple[str, str]]:
    return [("", "The source's format"), (BillingSource.Format.AUTO, "Detect from the header"), *FORMATS.items()]


class BillingUploadForm(forms.Form):
    file = forms.FileField(help_text=f"A billing export: {FILE_KINDS}. It replaces the billing periods it covers.")
    format = forms.ChoiceField(required=False, label="Format (optional override)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["format"].choices = format_choices()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if problem := billing_file_problem(upload):
            raise forms.ValidationError(problem)
        return upload


# --- Allocation rules ----------------------------------------------------------------------------------------


class AllocationRuleForm(forms.ModelForm):
    weights = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='For "by fixed weights": service=weight pairs, e.g. price-forecast=2, promotions=1 (or JSON).',
    )

    class Meta:
        model = AllocationRule
        fields = [
            "name",
            "order",
            "enabled",
            "match",
            "tag_key",
            "value",
            "service",
            "environment",
            "location",
            "shared",
            "spread",
            "weights",
        ]
        error_messages = {
            "value": {"required": "give the value to compare (for a resource rule, a regular expression)"},
            "match": {
                "required": "choose what the rule matches on: a tag, a sub-account, a resource or a service name"
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = Service.objects.order_by("name")
        self.fields["environment"].queryset = Environment.objects.order_by("name")
        # Stores come from tags; a rule assigns a region, site or cloud region.
        self.fields["location"].queryset = Location.objects.exclude(kind=Location.Kind.STORE).order_by("name")
        self.fields["service"].help_text = "Where matched cost goes; empty for a shared rule."
        self.fields["environment"].help_text = "Empty: taken from the env or environment tag."
        self.fields["location"].help_text = "Empty: taken from the location or store tag."
        if self.instance.pk and not self.is_bound:
            self.initial["weights"] = ", ".join(f"{k}={v}" for k, v in sorted((self.instance.weights or {}).items()))

    def clean_weights(self):
        weights, self._weights_problems = parse_weights(self.cleaned_data.get("weights") or "")
        return weights_json(weights)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        rule = self.instance
        for name in self.Meta.fields:
            if name in cleaned:
                setattr(rule, name, cleaned[name])
        for name, messages in rule_problems(rule, getattr(self, "_weights_problems", [])).items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
        return cleaned


# --- Units of service ---------------------------------------------------------------------------------------


class UnitVolumeUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with the header service,date,units: the service's slug, YYYY-MM-DD, and the units delivered "
        "that day in the service's unit of delivery. A day imported again is replaced."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if too_large := upload_size_problem(upload, "csv"):
            raise forms.ValidationError(too_large)
        if not upload.size:
            raise forms.ValidationError(f"{upload.name} is empty (expected a CSV with the header service,date,units)")
        return upload


# --- Page filters -----------------------------------------------------------------------------------------


def _service_choices(*, unallocated: bool = False) -> list[tuple[str, str]]:
    choices = [("", "All services")]
    if unallocated:
        choices.append(("unallocated", "Unallocated"))
    return choices + list(Service.objects.order_by("name").values_list("slug", "name"))


class UnitCostFilterForm(forms.Form):
    service = forms.ChoiceField(required=False, label="Trend of")
    cost = forms.ChoiceField(choices=COST_CHOICES, required=False, label="Cost")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = [("", "The costliest service"), *_service_choices()[1:]]

    def value(self, name: str, default: str = "") -> str:
        return (self.cleaned_data.get(name) if self.is_valid() else None) or default


class ExplorerForm(forms.Form):
    group_by = forms.ChoiceField(
        choices=[(k, d.label) for k, d in DIMENSIONS.items()], required=False, label="Group by"
    )
    grain = forms.ChoiceField(choices=list(GRAINS.items()), required=False, label="Per")
    cost = forms.ChoiceField(choices=COST_CHOICES, required=False, label="Cost")
    service = forms.ChoiceField(required=False, label="Service")
    environment = forms.ChoiceField(required=False, label="Environment")
    provider = forms.ChoiceField(required=False, label="Provider")

    def __init__(self, *args, providers: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = _service_choices(unallocated=True)
        self.fields["environment"].choices = [
            ("", "All environments"),
            *Environment.objects.values_list("slug", "name"),
        ]
        self.fields["provider"].choices = [("", "All providers"), *((p, p) for p in providers)]
