"""Default schedules of the telemetry app (created after migrate; admins may edit them under Settings)."""

SCHEDULES = [
    {
        "name": "Telemetry: pull due Prometheus sources",
        "task": "telemetry.pull_due_sources",
        "queue": "telemetry",
        "every_seconds": 60,
    },
    {
        "name": "Telemetry: purge raw points past retention",
        "task": "telemetry.purge",
        "queue": "telemetry",
        "crontab": {"minute": "15", "hour": "2"},
    },
]
