"""Load a backup written by backup_portal into an empty, migrated database, all or nothing."""

import time

from django.core.management.base import BaseCommand, CommandError

from apps.core.backup import BackupError, pg_restore, read_header, restore


class Command(BaseCommand):
    help = (
        "Restore a backup_portal file into this database (migrated to the same version). Refuses a database that "
        "already holds data unless --force; loads everything in one transaction and checks the row counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("infile", help="A file written by backup_portal.")
        parser.add_argument("--force", action="store_true", help="Replace the data of a database that is not empty.")
        parser.add_argument("--database", default="default", help="The database alias to restore into.")
        parser.add_argument(
            "--method",
            choices=["portable", "pg_dump"],
            default="portable",
            help="pg_dump: the file was written by backup_portal --method pg_dump; restore it with pg_restore into a "
            "new PostgreSQL database (created, not migrated).",
        )

    def handle(self, *args, infile, force, database, method, **options):
        started = time.monotonic()
        if method == "pg_dump":
            try:
                pending = pg_restore(infile, using=database, force=force)
            except BackupError as exc:
                raise CommandError(f"restore refused, nothing was changed: {exc}") from exc
            self.stdout.write(self.style.SUCCESS(f"pg_restore loaded {infile} in {time.monotonic() - started:.1f}s."))
            if pending:
                self.stdout.write(f"The code has migrations the backup predates; run migrate: {', '.join(pending)}")
            return
        try:
            header = read_header(infile)
            self.stdout.write(
                f"Restoring {infile}: taken {header['created_at']} from {header['vendor']}, "
                f"{sum(header['counts'].values())} rows ..."
            )
            result = restore(infile, using=database, force=force, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(f"restore refused, nothing was changed: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {result.rows} rows of {len(result.counts)} tables in {time.monotonic() - started:.1f}s; "
                "the counts match the backup."
            )
        )
