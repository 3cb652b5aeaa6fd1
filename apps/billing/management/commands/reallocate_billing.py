from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError

from apps.billing import services
from apps.billing.models import Reallocation


class Command(BaseCommand):
    help = (
        "Re-allocate every stored billing period with the current allocation rules and rebuild the rollups, here "
        "rather than in a worker: the re-allocations waiting for a worker, or a new one when none waits."
    )
    requires_system_checks = [Tags.models]

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, no_progress, **options):
        from tqdm import tqdm

        if not Reallocation.objects.filter(status=Reallocation.Status.QUEUED).exists():
            services.allocation_rules_changed(reason="re-allocation asked for on the command line", queue=False)
        bar = tqdm(total=0, unit=" periods", desc="re-allocating", disable=no_progress or None, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            finished = services.reallocations_run_pending(on_progress=progress)
        except Exception as exc:
            bar.close()
            raise CommandError(f"re-allocation failed: {exc}") from None
        bar.close()
        for reallocation in finished:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Re-allocated {reallocation.periods_total} billing period(s) after {reallocation.reason}"
                    + (f" and {reallocation.changes - 1} later change(s)" if reallocation.changes > 1 else "")
                    + "."
                )
            )
        if not finished:
            self.stdout.write("Nothing to re-allocate: a worker took the waiting re-allocation first.")
