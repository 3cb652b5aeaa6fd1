import os

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError

from apps.billing.formats import FORMATS
from apps.billing.models import BillingImport, BillingSource
from apps.billing.services import billing_import_path
from apps.core.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Import a billing export (FOCUS, AWS CUR legacy or 2.0, Azure EA/MCA, GCP; CSV, gzip or Parquet) into a "
        "source. Replaces the source's rows of the billing periods the file covers; all or nothing."
    )
    # The models' checks only: the web's (URLs, templates, security headers) load every view, which cost each
    # import 0.5-0.7 s before its first row; the worker's imports run no checks at all.
    requires_system_checks = [Tags.models]

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--source", required=True, help="Billing source name (created if it does not exist).")
        parser.add_argument(
            "--format", choices=["auto", *FORMATS], default=None, help="Override the source's format for this file."
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, path, source, format, no_progress, **options):
        from tqdm import tqdm

        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file")
        billing_source, created = BillingSource.objects.get_or_create(name=source)
        if created:
            self.stdout.write(f"Created billing source {source!r} (format: detect from the header).")
        bar = tqdm(
            total=100,
            unit="%",
            desc=os.path.basename(path),
            disable=no_progress or None,
            file=self.stderr._out,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
        )

        def progress(rows: int, fraction: float | None) -> None:
            if fraction is not None:
                bar.n = round(fraction * 100)
            bar.set_postfix_str(f"{rows:,} rows")

        try:
            result = billing_import_path(source=billing_source, path=path, fmt=format, on_progress=progress)
        except ApplicationError as exc:
            bar.close()
            raise CommandError(str(exc)) from None
        bar.n = 100 if result.status == BillingImport.Status.SUCCEEDED else bar.n
        bar.close()
        if result.status != BillingImport.Status.SUCCEEDED:
            raise CommandError(f"rejected: {result.error}")
        warnings = sum(w.get("rows", 0) for w in result.warnings)
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.rows_imported:,} rows from {result.filename} ({result.format}) into {source!r}: "
                f"billing periods {', '.join(result.periods)}; BilledCost {result.billed_total} {result.currency}, "
                f"EffectiveCost {result.effective_total} {result.currency}; replaced {result.rows_replaced:,} earlier "
                f"rows; {len(result.warnings)} conformance finding(s) on {warnings:,} row(s); "
                f"{result.duration_seconds:.1f}s."
            )
        )
