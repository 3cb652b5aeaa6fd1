"""Default schedules of the alerts app (created after migrate; admins may edit them under Settings)."""

SCHEDULES = [
    {"name": "Alerts: evaluate rules", "task": "alerts.evaluate", "queue": "alerts", "every_seconds": 60},
    {
        "name": "Alerts: deliver due notifications",
        "task": "alerts.deliver_due",
        "queue": "notifications",
        "every_seconds": 60,
    },
    {
        "name": "Alerts: purge old notifications",
        "task": "alerts.purge_notifications",
        "queue": "alerts",
        "crontab": {"minute": "40", "hour": "2"},
    },
]
