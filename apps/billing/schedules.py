SCHEDULES = [
    {"name": "Pull billing sources", "task": "billing.pull_due_sources", "every_seconds": 60, "queue": "billing"},
]
