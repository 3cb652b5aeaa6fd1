import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.accounts.models import User
from apps.catalog.models import Location, Product, Service

pytestmark = pytest.mark.django_db


def test_load_demo_creates_the_retailer_and_one_user_per_role_and_is_idempotent():
    # The organisation only: each app's demo data is exercised by that app's browser test.
    call_command("load_demo", "--only", "accounts", "catalog", stdout=open("/dev/null", "w"))  # noqa: SIM115
    counts = (User.objects.count(), Service.objects.count(), Location.objects.count(), Product.objects.count())
    assert Location.objects.filter(kind=Location.Kind.STORE).count() == 1900
    assert {u.role for u in User.objects.all()} == {"executive", "product_manager", "admin"}
    for username in ["cfo", "cio", "pm", "pm2", "admin"]:
        assert authenticate(username=username, password="opsportal-demo") is not None
    assert Product.objects.get(slug="smart-cart").owner.username == "pm2"

    call_command("load_demo", "--only", "accounts", "catalog", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert (User.objects.count(), Service.objects.count(), Location.objects.count(), Product.objects.count()) == counts
