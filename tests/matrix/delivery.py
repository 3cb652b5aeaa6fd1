from apps.delivery.models import DeliverySource

from . import ADM, ADMIN_PAGE, ANON, API_READ, API_READ_ADMIN, API_WRITE_ADMIN, EXE, PAGE, PM, Route


def setup(users) -> None:
    DeliverySource.objects.create(
        slug="matrix-github", name="Matrix GitHub", kind="github", secret_env_var="OPSPORTAL_DELIVERY_MATRIX_SECRET"
    )


MATRIX = [
    Route("delivery:activity", "get", PAGE),
    Route("delivery:import", "get", ADMIN_PAGE),
    Route("delivery:import", "post", {ANON: 302, EXE: 403, PM: 403, ADM: 200}),  # 200: the form's errors shown
    Route("delivery-metrics", "get", API_READ),
    Route("delivery-import-list", "get", API_READ_ADMIN),
    Route("delivery-import-list", "post", API_WRITE_ADMIN, json=True),
    # The webhook authenticates by signature, not by user: an unsigned request is refused for everyone.
    Route(
        "delivery-webhook-github",
        "post",
        {ANON: 401, EXE: 401, PM: 401, ADM: 401},
        kwargs=lambda: {"slug": "matrix-github"},
        json=True,
    ),
]
for _kind in ["feature", "deployment", "change", "incident"]:
    MATRIX += [
        Route(f"delivery-{_kind}-list", "get", API_READ),
        Route(f"delivery-{_kind}-list", "post", API_WRITE_ADMIN, json=True),
    ]
