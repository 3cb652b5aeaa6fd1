"""Write every row of the portal's database to a portable backup file (see apps/core/backup.py)."""

import time

from django.core.management.base import BaseCommand, CommandError

from apps.core.backup import BackupError, backup, pg_backup


class Command(BaseCommand):
    help = "Back up the portal's data to a gzip JSON-lines file that restore_portal loads (SQLite or PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("outfile", help="Where to write the backup, e.g. opsportal-2026-11-27.jsonl.gz")
        parser.add_argument("--database", default="default", help="The database alias to back up.")
        parser.add_argument(
            "--method",
            choices=["portable", "pg_dump"],
            default="portable",
            help="portable (default): JSON lines any database can restore; pg_dump: PostgreSQL's custom format, "
            "restored with restore_portal --method pg_dump into a new PostgreSQL database.",
        )

    def handle(self, *args, outfile, database, method, **options):
        started = time.monotonic()
        self.stdout.write(f"Backing up to {outfile} ...")
        if method == "pg_dump":
            try:
                pg_backup(outfile, using=database)
            except BackupError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"pg_dump wrote {outfile} in {time.monotonic() - started:.1f}s."))
            return
        try:
            result = backup(outfile, using=database, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {result.rows} rows of {sum(1 for n in result.counts.values() if n)} tables to "
                f"{result.path} in {time.monotonic() - started:.1f}s."
            )
        )
