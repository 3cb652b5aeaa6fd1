from django.db.models import Count, Q, QuerySet

from .models import CapacityPool, Location, MLModel, Product, Service, Team


def catalog_counts() -> dict[str, int]:
    locations = Location.objects.aggregate(
        stores=Count("pk", filter=Q(kind=Location.Kind.STORE)),
        regions=Count("pk", filter=Q(kind=Location.Kind.REGION)),
    )
    return {
        "services": Service.objects.count(),
        "teams": Team.objects.count(),
        "models": MLModel.objects.count(),
        "pools": CapacityPool.objects.count(),
        "products": Product.objects.count(),
        **locations,
    }


def service_list() -> QuerySet[Service]:
    return Service.objects.select_related("team").annotate(model_count=Count("ml_models"))


def model_list() -> QuerySet[MLModel]:
    return MLModel.objects.select_related("service", "team").prefetch_related("versions")


def pool_list() -> QuerySet[CapacityPool]:
    return CapacityPool.objects.select_related("environment", "location", "service")


def team_list() -> QuerySet[Team]:
    return Team.objects.annotate(service_count=Count("services"))


def product_list() -> QuerySet[Product]:
    return Product.objects.select_related("owner", "service")


def region_list() -> QuerySet[Location]:
    return Location.objects.filter(kind=Location.Kind.REGION).annotate(store_count=Count("children"))
