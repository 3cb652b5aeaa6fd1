"""Default periodic tasks of the adoption area (created once after migrate; admins may edit them)."""

SCHEDULES = [
    {
        "name": "Adoption rollups",
        "task": "adoption.refresh_all_rollups",
        "queue": "default",
        "every_seconds": 300,
    },
]
