import json

from django.core.management.base import BaseCommand, CommandError

from apps.billing.models import BillingSource
from apps.billing.selectors import source_summary


class Command(BaseCommand):
    help = "The stored row count and BilledCost / EffectiveCost totals of a source, overall and per billing period."

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True)
        parser.add_argument("--json", action="store_true", help="Print JSON (decimals as strings).")

    def handle(self, *args, source, **options):
        try:
            billing_source = BillingSource.objects.get(name=source)
        except BillingSource.DoesNotExist:
            raise CommandError(f"no billing source named {source!r}") from None
        summary = source_summary(source=billing_source)
        if options["json"]:
            self.stdout.write(_json_dumps(summary))
            return
        self.stdout.write(
            f"{source}: {summary['rows']:,} rows, BilledCost {summary['billed_cost']}, "
            f"EffectiveCost {summary['effective_cost']}"
        )
        for period in summary["periods"]:
            self.stdout.write(
                f"  {period['billing_period_start']}: {period['rows']:,} rows, "
                f"BilledCost {period['billed_cost']}, EffectiveCost {period['effective_cost']}"
            )


def _json_dumps(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)
