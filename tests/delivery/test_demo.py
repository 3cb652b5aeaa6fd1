"""The demo year of delivery goes through the CSV importer, fills every month and can be loaded again."""

import pytest
from django.utils import timezone

from apps.accounts import demo as accounts_demo
from apps.catalog import demo as catalog_demo
from apps.core.periods import month_of
from apps.delivery import demo
from apps.delivery.models import DeliveryImport, Deployment, Feature, Incident
from apps.delivery.selectors import DeliveryScope, cost_series, dora_series, trailing_periods

pytestmark = pytest.mark.django_db


def test_the_demo_loads_a_year_of_delivery_through_the_importer_and_is_idempotent():
    accounts_demo.load(log=lambda m: None)
    catalog_demo.load(log=lambda m: None)
    demo.load(log=lambda m: None)

    imports = list(DeliveryImport.objects.values_list("channel", "kind", "status"))
    assert sorted(imports) == sorted(
        [("csv", kind, "applied") for kind in ["changes", "deployments", "features", "incidents"]]
    )
    services = set(Deployment.objects.values_list("service__slug", flat=True))
    assert services == {"price-forecast", "promotions", "shelf-vision", "smart-cart", "ml-platform"}
    assert set(Feature.objects.values_list("team__slug", flat=True)) == {"pricing-ml", "vision", "platform", "checkout"}
    assert Deployment.objects.filter(status="failure").exists() and Incident.objects.exists()
    assert Feature.objects.filter(shipped_at__isnull=True).exists()  # work still in progress

    last_month = month_of(timezone.localdate()).previous()
    periods = trailing_periods(last_month, 11)
    for point in cost_series(periods, DeliveryScope()).points:
        assert point.features > 10, f"{point.period} has only {point.features} features"
    for point in dora_series(periods, DeliveryScope()):
        assert point.deployments > 20 and point.lead_time_hours is not None

    counts = (Feature.objects.count(), Deployment.objects.count(), Incident.objects.count())
    demo.load(log=lambda m: None)
    again = DeliveryImport.objects.order_by("-created_at")[:4]
    assert all(i.created == 0 and i.updated == 0 for i in again)
    assert (Feature.objects.count(), Deployment.objects.count(), Incident.objects.count()) == counts
