"""DORA performance tiers as data, with the report (and year) they come from.

Bounds: deployment frequency in deployments per day (at least); lead time and time to restore in hours,
change failure rate in percent (at most). DORA publishes the clusters' typical values rather than cut-offs;
the bounds below read "less than one day" as at most 24 h, "once per week" as 1/7 a day, "once per month"
as once in 31 days, and a cluster's change failure rate as an upper bound. An empty bound catches the rest.
Admins can edit these rows or add a new year's set in the admin site.
"""

from decimal import Decimal

from django.db import migrations

DAILY, WEEKLY, MONTHLY = Decimal("1"), Decimal("0.142857"), Decimal("0.032258")

BENCHMARKS = [
    {
        "source_year": 2023,
        "source": "DORA Accelerate State of DevOps Report 2023",
        "url": "https://dora.dev/research/2023/dora-report/",
        "note": "2023 clusters: elite 18%, high 31%, medium 33%, low 17% of respondents. The low cluster "
        "deploys as often as the medium one; it is set apart by its change failure rate and recovery time.",
        "active": False,
        "tiers": {
            "deployment_frequency": [
                ("elite", DAILY, "On demand (multiple deploys per day)"),
                ("high", WEEKLY, "Between once per day and once per week"),
                ("medium", MONTHLY, "Between once per week and once per month"),
                ("low", None, "Between once per week and once per month"),
            ],
            "lead_time": [
                ("elite", Decimal("24"), "Less than one day"),
                ("high", Decimal("168"), "Between one day and one week"),
                ("medium", Decimal("744"), "Between one week and one month"),
                ("low", None, "Between one week and one month"),
            ],
            "change_failure_rate": [
                ("elite", Decimal("5"), "Typically 5% of deployments"),
                ("high", Decimal("10"), "Typically 10% of deployments"),
                ("medium", Decimal("15"), "Typically 15% of deployments"),
                ("low", None, "Typically 64% of deployments"),
            ],
            "time_to_restore": [
                ("elite", Decimal("1"), "Less than one hour"),
                ("high", Decimal("24"), "Less than one day"),
                ("medium", Decimal("168"), "Between one day and one week"),
                ("low", None, "Between one month and six months"),
            ],
        },
    },
    {
        "source_year": 2024,
        "source": "DORA Accelerate State of DevOps Report 2024",
        "url": "https://dora.dev/research/2024/dora-report/",
        "note": "2024 clusters: elite 19%, high 22%, medium 35%, low 25% of respondents. The medium cluster "
        "had a lower change failure rate (10%) than the high one (20%) and the same recovery time (less than "
        "one day). Tiers are tried best first, so those two medium bounds never decide a tier: a 15% change "
        "failure rate rates high, above 20% low.",
        "active": True,
        "tiers": {
            "deployment_frequency": [
                ("elite", DAILY, "On demand (multiple deploys per day)"),
                ("high", WEEKLY, "Between once per day and once per week"),
                ("medium", MONTHLY, "Between once per week and once per month"),
                ("low", None, "Between once per month and once every six months"),
            ],
            "lead_time": [
                ("elite", Decimal("24"), "Less than one day"),
                ("high", Decimal("168"), "Between one day and one week"),
                ("medium", Decimal("744"), "Between one week and one month"),
                ("low", None, "Between one month and six months"),
            ],
            "change_failure_rate": [
                ("elite", Decimal("5"), "Typically 5% of deployments"),
                ("high", Decimal("20"), "Typically 20% of deployments"),
                ("medium", Decimal("10"), "Typically 10% of deployments"),
                ("low", None, "Typically 40% of deployments"),
            ],
            "time_to_restore": [
                ("elite", Decimal("1"), "Less than one hour"),
                ("high", Decimal("24"), "Less than one day"),
                ("medium", Decimal("24"), "Less than one day"),
                ("low", None, "Between one week and one month"),
            ],
        },
    },
]
RANKS = {"elite": 1, "high": 2, "medium": 3, "low": 4}


def load(apps, schema_editor):
    DoraBenchmark = apps.get_model("delivery", "DoraBenchmark")
    DoraTierThreshold = apps.get_model("delivery", "DoraTierThreshold")
    for spec in BENCHMARKS:
        benchmark, created = DoraBenchmark.objects.get_or_create(
            source_year=spec["source_year"],
            defaults={k: spec[k] for k in ("source", "url", "note", "active")},
        )
        if not created:
            continue
        DoraTierThreshold.objects.bulk_create(
            DoraTierThreshold(benchmark=benchmark, metric=metric, tier=tier, rank=RANKS[tier], bound=bound, label=label)
            for metric, tiers in spec["tiers"].items()
            for tier, bound, label in tiers
        )


def unload(apps, schema_editor):
    apps.get_model("delivery", "DoraBenchmark").objects.filter(
        source_year__in=[b["source_year"] for b in BENCHMARKS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_initial")]

    operations = [migrations.RunPython(load, unload)]
