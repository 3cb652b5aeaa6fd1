"""Create the demo organisation and its data, through the same paths real data takes.

Each app that has demo data provides ``apps/<app>/demo.py`` with ``load(*, log)``; they run in
INSTALLED_APPS order, so users and the catalog exist before the data that refers to them. Safe to
run again: every step updates what exists rather than duplicating it.
"""

import importlib
import time

from django.apps import apps
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Load the demo retailer (Meridian Markets) with its users, catalog and data."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only", nargs="+", metavar="APP", help="Load only these apps' demo data (e.g. accounts catalog billing)."
        )

    def handle(self, *args, only=None, **options):
        for config in apps.get_app_configs():
            if not config.name.startswith("apps.") or (only and config.label not in only):
                continue
            try:
                module = importlib.import_module(f"{config.name}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.demo":
                    raise
                continue
            started = time.monotonic()
            module.load(log=lambda msg, label=config.label: self.stdout.write(f"  [{label}] {msg}"))
            self.stdout.write(f"  [{config.label}] done in {time.monotonic() - started:.1f}s")
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
