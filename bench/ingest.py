#!/usr/bin/env python
"""Billing ingest speed: `import_billing` against a plain `psql \\copy` of the same FOCUS CSV.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal_bench python bench/ingest.py --rows 1000000

Generates a FOCUS 1.0 CSV of N rows (the shared sample's rows, repeated with distinct resource ids),
imports it with `manage.py import_billing` (parse, validate, store, allocate, roll up), then copies it
with psql into a table of text columns in the same database. Prints both times, rows per
second, the import's peak memory, the seconds each step of the import took, the CPU time of the import's
process and how busy the machine's cores were meanwhile (the database's work included) and, as the last
line, the ratio import/copy. With ``--rules N`` the import also allocates, as in a configured portal: N tag
rules and two environments named by the rows' tags.
"""

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "focus-1.0_sample_1000.csv"


RULES_SCRIPT = """
import collections, csv, json, sys
import django
django.setup()
from apps.billing.models import AllocationRule
from apps.catalog.models import Environment, Service, Team
count, sample = int(sys.argv[1]), sys.argv[2]
with open(sample, newline="") as fh:
    tags = [json.loads(row["Tags"]) for row in csv.DictReader(fh) if row["Tags"] not in ("", "NULL")]
counts = collections.Counter(t["application"] for t in tags if "application" in t)
apps = [name for name, _ in counts.most_common(count)]
team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench", "hourly_rate": 100})
for slug, name, kind in (("dev", "Development", "dev"), ("prod", "Production", "prod")):
    Environment.objects.get_or_create(slug=slug, defaults={"name": name, "kind": kind})
for order, app in enumerate(apps):
    service, _ = Service.objects.get_or_create(slug=f"bench-{order}", defaults={"name": app, "team": team})
    AllocationRule.objects.update_or_create(
        name=f"bench {app}",
        defaults={"order": order, "match": "tag", "tag_key": "application", "value": app, "service": service},
    )
print(f"allocation: {len(apps)} tag rules, environments dev and prod (from the env tags)")
"""


def generate(path: Path, rows: int) -> None:
    with open(SAMPLE, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        sample = list(reader)
    resource_col = header.index("ResourceId")
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for i in range(rows):
            row = list(sample[i % len(sample)])
            if row[resource_col] not in ("", "NULL"):
                row[resource_col] = f"{row[resource_col]}-{i // len(sample)}"
            writer.writerow(row)


def psql_copy(url: str, path: Path, columns: list[str]) -> float:
    table = "bench_ingest_copy"
    text_columns = ", ".join(f'"{c}" text' for c in columns)
    ddl = f"SET client_min_messages = warning; DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({text_columns});"
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", ddl], check=True)
    started = time.perf_counter()
    subprocess.run(
        [
            "psql",
            url,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER true)",
        ],
        check=True,
    )
    elapsed = time.perf_counter() - started
    subprocess.run(["psql", url, "-q", "-c", f"DROP TABLE {table}"], check=True)
    return elapsed


def _cpu_ticks() -> tuple[int, int] | None:
    """Busy and total CPU ticks of the machine so far (Linux), or None."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and waiting for I/O
    return sum(ticks) - idle, sum(ticks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        metavar="N",
        help="allocate as a configured portal does: N tag rules on the sample's most common applications, and "
        "the dev and prod environments its tags name",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/ingest.py needs DATABASE_URL naming a PostgreSQL database")
    # INFO: the import logs the seconds each of its steps took.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "opsportal.settings.test", "OPSPORTAL_TEST_LOG_LEVEL": "INFO"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    # The project's bytecode, as an installed portal has it (the image compiles it; an environment with
    # PYTHONDONTWRITEBYTECODE would otherwise compile the project's modules again in the timed process).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "apps", "opsportal"], cwd=ROOT, env=env, check=True)

    folder = Path(tempfile.mkdtemp(prefix="opsportal-bench-"))
    path = folder / f"focus-{args.rows}.csv"
    started = time.perf_counter()
    generate(path, args.rows)
    print(f"generated {args.rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f}s")

    if args.rules:
        done = subprocess.run(
            [sys.executable, "-c", RULES_SCRIPT, str(args.rules), str(SAMPLE)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"could not create the allocation rules:\n{done.stderr}")
        print(done.stdout.strip())

    source = f"bench-ingest-{args.rows}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = _cpu_ticks()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "import_billing", str(path), "--source", source, "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    import_seconds = time.perf_counter() - started
    busy_after = _cpu_ticks()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    import_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far: the import
    if result.returncode != 0:
        sys.exit(f"import failed:\n{result.stdout}\n{result.stderr}")
    print(result.stdout.strip())
    for line in result.stderr.splitlines():  # where the time went
        if " billing import " in line and ("s (" in line or "by COPY" in line or "row by row" in line):
            print("  " + line.split(" billing import ", 1)[1])

    with open(path, newline="") as fh:
        columns = next(csv.reader(fh))
    copy_seconds = psql_copy(url, path, columns)
    if not args.keep:
        path.unlink()
        folder.rmdir()

    print("load average (1, 5, 15 min): " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    # Where the cores went during the import: its own process, and the machine as a whole (the database too).
    print(f"import process CPU: {import_cpu:.1f} s (of {import_seconds:.1f} s)")
    if busy_before and busy_after:
        (busy0, total0), (busy1, total1) = busy_before, busy_after
        cores = os.cpu_count() or 1
        print(f"cores busy during the import: {100 * (busy1 - busy0) / max(total1 - total0, 1):.0f} % of {cores}")
    print(f"psql \\copy:     {copy_seconds:8.1f} s  {args.rows / copy_seconds:12,.0f} rows/s")
    print(
        f"import_billing: {import_seconds:8.1f} s  {args.rows / import_seconds:12,.0f} rows/s  "
        f"peak memory {peak_mb:,.0f} MB"
    )
    print(f"ratio import/copy={import_seconds / copy_seconds:.2f}")


if __name__ == "__main__":
    main()
