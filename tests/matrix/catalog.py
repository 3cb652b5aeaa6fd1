from apps.catalog.models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team
from tests.factories import EnvironmentFactory, ProductFactory, ServiceFactory

from . import ADM, API_DELETE_ADMIN, API_READ, API_UPDATE_ADMIN, API_WRITE_ADMIN, Route


def setup(users) -> None:
    env = EnvironmentFactory(slug="matrix-env", name="Matrix env")
    service = ServiceFactory(slug="matrix-service", team__slug="matrix-team")
    Location.objects.create(code="matrix-loc", name="Matrix location", kind=Location.Kind.STORE)
    CapacityPool.objects.create(slug="matrix-pool", name="Matrix pool", resource_type="cpu", environment=env)
    model = MLModel.objects.create(
        slug="matrix-model", name="Matrix model", task="vision", service=service, team=service.team
    )
    ModelVersion.objects.create(model=model, version="9.9.9")
    ProductFactory(slug="matrix-product")


def _remove_dependents(basename: str):
    # Deleting a row that others refer to is refused (PROTECT); remove the dependents first so the
    # matrix measures permissions, not referential integrity.
    def before(role) -> None:
        if role != ADM:
            return
        if basename in {"team", "service"}:
            MLModel.objects.all().delete()
        if basename in {"environment", "location"}:
            CapacityPool.objects.all().delete()
        if basename == "team":
            Service.objects.all().delete()

    return before


LOOKUPS = {
    "team": ("slug", lambda: Team.objects.get(slug="matrix-team").slug),
    "environment": ("slug", lambda: Environment.objects.get(slug="matrix-env").slug),
    "location": ("code", lambda: Location.objects.get(code="matrix-loc").code),
    "service": ("slug", lambda: Service.objects.get(slug="matrix-service").slug),
    "capacitypool": ("slug", lambda: CapacityPool.objects.get(slug="matrix-pool").slug),
    "mlmodel": ("slug", lambda: MLModel.objects.get(slug="matrix-model").slug),
    "modelversion": ("pk", lambda: ModelVersion.objects.get(version="9.9.9").pk),
    "product": ("slug", lambda: Product.objects.get(slug="matrix-product").slug),
}

MATRIX = []
for basename, (kwarg, value) in LOOKUPS.items():
    kwargs = (lambda k, v: lambda: {k: v()})(kwarg, value)
    MATRIX += [
        Route(f"{basename}-list", "get", API_READ),
        Route(f"{basename}-list", "post", API_WRITE_ADMIN, json=True),
        Route(f"{basename}-detail", "get", API_READ, kwargs=kwargs),
        Route(f"{basename}-detail", "patch", API_UPDATE_ADMIN, kwargs=kwargs, json=True),
        Route(f"{basename}-detail", "delete", API_DELETE_ADMIN, kwargs=kwargs, before=_remove_dependents(basename)),
    ]
