"""Allocation rules, environment tags and location tags, against a row-by-row reading of KPIS.md section 1:
the rules in order (the first match wins; a shared rule claims the row for spreading), then the `env` /
`environment` tags where the rule names no environment, then the `location` / `store` tags where it
names no location."""

import logging
import re
from datetime import date

import pytest
from django.db import connection

from apps.billing import rollups, services
from apps.billing.models import AllocationRule, BillingLineItem
from apps.catalog.models import Location
from tests.factories import EnvironmentFactory, ServiceFactory

from .test_unit_cost import import_items, save_rule

pytestmark = pytest.mark.django_db

ITEMS = [
    {"tags": {"app": "shop", "env": "prod"}},
    {"tags": {"app": "shop", "environment": "Development"}},  # an environment's name, under the other key
    {"tags": {"app": "vision", "env": "dev", "store": "s0042"}},
    {"tags": {"app": "vision"}, "sub": "acct-shared"},  # the tag rule comes first
    {"tags": {"team": "x"}, "sub": "acct-shared"},  # the shared account
    {"tags": {"env": "staging", "location": "s0007"}, "resource": "arn:gpu-node-7"},  # unknown env name
    {"tags": {"env": "prod", "location": "s0007"}, "resource": "arn:gpu-node-8", "sub": "acct-shared"},
    {"tags": {"env": 1, "store": 42}},  # a number is not the text of a slug or a code
    {"tags": {"env": "uat", "store": "s0042"}, "service_name": "Amazon S3"},
    {"service_name": "amazon s3"},  # service names match whatever their case
    {"tags": {"env": "prod", "environment": "dev"}},  # two environments: the first by name (Development)
    {},
    {"tags": {"app": "shop"}},  # claimed by a rule alone: unallocated again once that rule is disabled
]


def _expected(item: dict, rules: list[AllocationRule], envs, locations) -> tuple:
    tags = item.get("tags", {})
    for rule in rules:
        value = {
            "tag": tags.get(rule.tag_key),
            "sub_account": item.get("sub", "acct-1"),
            "service_name": item.get("service_name", "Amazon Elastic Compute Cloud").lower(),
        }.get(rule.match)
        if rule.match == "resource":
            hit = re.search(rule.value, item.get("resource", "")) is not None
        else:
            hit = value == (rule.value.lower() if rule.match == "service_name" else rule.value)
        if hit:
            break
    else:
        rule = None
    environment = rule.environment_id if rule else None
    if environment is None:
        for env in envs:
            if any(tags.get(key) in (env.slug, env.name) for key in ("env", "environment")):
                environment = env.pk
                break
    location = rule.location_id if rule else None
    if location is None:
        for key in ("location", "store"):
            code = tags.get(key)
            if isinstance(code, str) and code in locations:
                location = locations[code]
                break
    service = None if rule is None or rule.shared else rule.service_id
    return (rule.pk if rule else None, service, environment, location, bool(rule and rule.shared))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["as-written", "not-ascii", "table-rewritten", "rows-updated"])
def test_rules_and_tags_allocate_each_row_as_a_row_by_row_reading_does(tmp_path, monkeypatch, caplog, how):
    """On PostgreSQL the Arrow path allocates as it writes the rows when it can read every rule exactly as
    SQL does (no resource rule, ASCII service names); otherwise an import whose rows the rules mostly claim
    writes its table again with them applied, or the claimed rows are updated (and always on SQLite). The
    same allocation every way."""
    caplog.set_level(logging.INFO, logger="apps.billing")
    if how == "rows-updated":
        monkeypatch.setattr(rollups, "REWRITE_SHARE", 1.0)  # never more than all the rows
    shop, vision, storage = (ServiceFactory(slug=s, name=s.title()) for s in ("shop", "vision", "storage"))
    prod = EnvironmentFactory(slug="prod", name="Production")
    dev = EnvironmentFactory(slug="dev", name="Development")
    uat = EnvironmentFactory(slug="uat", name="UAT")
    store42 = Location.objects.create(code="s0042", name="Store 42", kind="store")
    store7 = Location.objects.create(code="s0007", name="Store 7", kind="store")
    dc = Location.objects.create(code="dc-1", name="Data centre", kind="datacenter")
    rules = [
        save_rule(name="gpu", order=1, match="resource", value=r"gpu-node-[78]$", service=vision, location=dc)
        if how not in ("as-written", "not-ascii")  # a PostgreSQL regular expression: left to the database
        else save_rule(name="gpu", order=1, match="sub_account", value="acct-gpu", service=vision, location=dc),
        save_rule(name="shop", order=2, match="tag", tag_key="app", value="shop", service=shop),
        save_rule(name="vision", order=3, match="tag", tag_key="app", value="vision", service=vision, environment=uat),
        save_rule(name="shared", order=4, match="sub_account", value="acct-shared", shared=True),
        save_rule(name="s3", order=5, match="service_name", value="AMAZON S3", service=storage),
        save_rule(name="off", order=0, match="tag", tag_key="app", value="shop", service=vision, enabled=False),
    ]
    day = date(2026, 3, 3)
    listed = [*ITEMS, {"service_name": "Amazon S3 \u2013 Glacier", "sub": "acct-gpu"}] if how == "not-ascii" else ITEMS
    items = [{**item, "day": day, "billed": f"{n + 1}.00", "effective": f"{n + 1}.00"} for n, item in enumerate(listed)]
    import_items(tmp_path, "allocation.csv", items)
    enabled = sorted((r for r in rules if r.enabled), key=lambda r: (r.order, r.pk))
    envs = sorted([prod, dev, uat], key=lambda env: env.name)  # the environments' order
    locations = {"s0042": store42.pk, "s0007": store7.pk, "dc-1": dc.pk}
    stored = {
        li.row_number: (li.allocation_rule_id, li.service_id, li.environment_id, li.location_id, li.is_shared)
        for li in BillingLineItem.objects.all()
    }
    expected = {n + 2: _expected(item, enabled, envs, locations) for n, item in enumerate(listed)}
    assert stored == expected
    on_postgresql = connection.vendor == "postgresql"
    assert ("allocated as written" in caplog.text) == (how == "as-written" and on_postgresql)
    assert ("allocate by rewriting" in caplog.text) == (how in ("not-ascii", "table-rewritten") and on_postgresql)
    if how not in ("as-written", "not-ascii"):  # the resource rule's file
        # Spot checks the reading above agrees with, written out by hand.
        assert expected[2] == (rules[1].pk, shop.pk, prod.pk, None, False)
        assert expected[4] == (rules[2].pk, vision.pk, uat.pk, store42.pk, False)
        assert expected[6] == (rules[3].pk, None, None, None, True)
        assert expected[8] == (rules[0].pk, vision.pk, prod.pk, dc.pk, False)
        assert expected[9] == (None, None, None, None, False)
        assert expected[11] == (rules[4].pk, storage.pk, None, None, False)
        assert expected[12] == (None, None, dev.pk, None, False)
        assert expected[13] == (None, None, None, None, False)

    # Rules changed later: every stored row is allocated again, as the new rules read it.
    shop_rule = AllocationRule.objects.get(name="shop")
    shop_rule.enabled = False
    services.allocation_rule_save(rule=shop_rule)
    save_rule(name="vision-dev", order=0, match="tag", tag_key="env", value="dev", service=vision, location=store7)
    again = list(AllocationRule.objects.filter(enabled=True).order_by("order", "pk"))
    stored = {
        li.row_number: (li.allocation_rule_id, li.service_id, li.environment_id, li.location_id, li.is_shared)
        for li in BillingLineItem.objects.all()
    }
    assert stored == {n + 2: _expected(item, again, envs, locations) for n, item in enumerate(listed)}
