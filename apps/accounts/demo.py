"""Demo users, one or more per role. Their credentials are in the README."""

from .models import User
from .roles import Role

DEMO_PASSWORD = "opsportal-demo"

DEMO_USERS = [
    ("cfo", "Carla", "Ferreira", Role.EXECUTIVE, True),
    ("cio", "Ian", "Okafor", Role.EXECUTIVE, True),
    ("pm", "Priya", "Mehta", Role.PRODUCT_MANAGER, False),
    ("pm2", "Tom", "Lindqvist", Role.PRODUCT_MANAGER, False),
    ("admin", "Ada", "Novak", Role.ADMIN, False),
]


def load(*, log) -> None:
    for username, first, last, role, digest in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "email": f"{username}@meridian-markets.example",
                "role": role,
                "digest_subscribed": digest,
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
    log(f"users: {', '.join(u[0] for u in DEMO_USERS)} (password {DEMO_PASSWORD!r})")
