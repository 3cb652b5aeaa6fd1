SCHEDULES = [
    {
        "name": "Weekly KPI digest",
        "task": "kpis.weekly_digest",
        "queue": "notifications",
        "crontab": {"minute": "0", "hour": "7", "day_of_week": "1"},  # Mondays 07:00 UTC
    },
]
