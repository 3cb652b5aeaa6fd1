"""Default schedules of the capacity app (created after migrate; admins may edit them under Settings)."""

SCHEDULES = [
    {
        "name": "Capacity: daily-grain forecasts",
        "task": "capacity.forecast_scheduled",
        "queue": "forecasts",
        "crontab": {"minute": "30", "hour": "3"},
    },
    {
        "name": "Capacity: hourly-grain forecasts",
        "task": "capacity.forecast_scheduled_hourly",
        "queue": "forecasts",
        "crontab": {"minute": "30", "hour": "4"},
    },
]
