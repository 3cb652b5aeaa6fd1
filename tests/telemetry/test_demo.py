"""The demo's telemetry goes through the push service, covers every demo model and pool, and can be run again."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.catalog import demo as catalog_demo
from apps.catalog.models import CapacityPool, MLModel
from apps.telemetry import demo
from apps.telemetry.models import Series, ServiceUnitSource
from apps.telemetry.selectors import service_units

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def test_demo_telemetry_covers_the_catalog_and_is_idempotent(monkeypatch):
    catalog_demo.load(log=lambda msg: None)
    monkeypatch.setattr(demo, "DAYS", 3)
    monkeypatch.setattr(demo.timezone, "now", lambda: NOW)
    logs = []
    demo.load(log=logs.append)
    assert "0 already stored" in logs[0]
    assert set(Series.objects.filter(metric="latency_ms").values_list("model__slug", flat=True)) == set(
        MLModel.objects.values_list("slug", flat=True)
    )
    for pool in CapacityPool.objects.all():
        assert Series.objects.filter(pool=pool, metric=f"{pool.resource_type}_used").exists(), pool.slug
    assert ServiceUnitSource.objects.count() == 5
    smart_cart = ServiceUnitSource.objects.get(service__slug="smart-cart").service
    assert service_units(smart_cart, NOW - timedelta(days=3), NOW) > 0

    demo.load(log=logs.append)
    assert "(0 new" in logs[1] and "0 changed" in logs[1]
