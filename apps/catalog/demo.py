"""The demo retailer, Meridian Markets: 1,900 stores in 10 regions, cloud + data centre + store edge."""

from decimal import Decimal

from django.db import transaction

from apps.accounts.models import User

from .models import CapacityPool, Environment, Location, MLModel, ModelVersion, Product, Service, Team

REGIONS = [
    ("north-east", "North East", 172),
    ("north-west", "North West", 214),
    ("yorkshire", "Yorkshire", 188),
    ("midlands", "Midlands", 241),
    ("east", "East of England", 176),
    ("london", "London", 265),
    ("south-east", "South East", 232),
    ("south-west", "South West", 167),
    ("wales", "Wales", 96),
    ("scotland", "Scotland", 149),
]  # 1,900 stores

TEAMS = [
    ("pricing-ml", "Pricing ML", "118.00"),
    ("vision", "Store Vision", "124.00"),
    ("platform", "ML Platform", "132.00"),
    ("checkout", "Checkout Engineering", "109.00"),
]

ENVIRONMENTS = [
    ("prod", "Production", "prod"),
    ("uat", "UAT", "uat"),
    ("dev", "Development", "dev"),
    ("test", "Test", "test"),
]

SERVICES = [
    (
        "price-forecast",
        "Price forecasting",
        "pricing-ml",
        "1,000 predictions",
        "Daily price-elasticity forecasts per SKU and store.",
    ),
    (
        "promotions",
        "Real-time promotions",
        "pricing-ml",
        "1,000 offers served",
        "Personalised offers at the shelf and in the app.",
    ),
    ("shelf-vision", "Shelf vision", "vision", "store-day", "Computer vision for gaps and planogram compliance."),
    ("smart-cart", "Smart cart", "checkout", "checkout", "Camera-equipped carts that scan as shoppers go."),
    (
        "ml-platform",
        "ML platform",
        "platform",
        "1,000 inference requests",
        "Shared model serving, feature store and GPU fleet.",
    ),
]

POOLS = [
    ("eks-prod-cpu", "EKS prod general CPU", "cpu", "prod", "aws-eu-west-1", "ml-platform", "0.0420"),
    ("gpu-a10g-prod", "GPU fleet A10G (prod)", "gpu", "prod", "aws-eu-west-1", "ml-platform", "1.2120"),
    ("aks-vision-gpu", "AKS vision GPU T4", "gpu", "prod", "azure-uksouth", "shelf-vision", "0.5260"),
    ("dc-vmware-cpu", "Data centre VMware cluster", "cpu", "prod", "dc-leeds", "price-forecast", "0.0310"),
    ("store-edge-tier", "Store edge tier (Jetson)", "nodes", "prod", None, "smart-cart", "0.0850"),
    ("eks-dev-cpu", "EKS dev/test CPU", "cpu", "dev", "aws-eu-west-1", None, "0.0420"),
]

MODELS = [
    (
        "price-elasticity",
        "Price elasticity XGB",
        "forecasting",
        "price-forecast",
        "pricing-ml",
        [("1.3.0", "archived", "batch"), ("1.4.2", "production", "batch"), ("1.5.0", "staging", "shadow")],
    ),
    (
        "promo-ranker",
        "Promotion ranker",
        "recommendation",
        "promotions",
        "pricing-ml",
        [("2.1.0", "production", "online"), ("2.2.0", "staging", "canary")],
    ),
    (
        "shelf-gap-detector",
        "Shelf gap detector",
        "vision",
        "shelf-vision",
        "vision",
        [("3.0.1", "production", "edge"), ("3.1.0", "staging", "edge")],
    ),
    (
        "cart-item-recogniser",
        "Cart item recogniser",
        "vision",
        "smart-cart",
        "checkout",
        [("0.9.4", "production", "edge")],
    ),
    (
        "demand-forecast",
        "Store demand forecast",
        "forecasting",
        "price-forecast",
        "pricing-ml",
        [("5.0.0", "production", "batch")],
    ),
]

PRODUCTS = [
    ("price-forecasting", "Price Forecasting", "price-forecast", "pm", ["forecast_viewed", "price_accepted"]),
    ("real-time-promotions", "Real-time Promotions", "promotions", "pm", ["promo_created", "promo_published"]),
    ("smart-cart", "Smart Cart", "smart-cart", "pm2", ["cart_session_started", "cart_checkout"]),
    ("shelf-vision", "Shelf Vision", "shelf-vision", "pm2", ["gap_alert_opened", "gap_resolved"]),
]


@transaction.atomic
def load(*, log) -> None:
    teams = {}
    for slug, name, rate in TEAMS:
        teams[slug], _ = Team.objects.update_or_create(slug=slug, defaults={"name": name, "hourly_rate": Decimal(rate)})
    envs = {}
    for slug, name, kind in ENVIRONMENTS:
        envs[slug], _ = Environment.objects.update_or_create(slug=slug, defaults={"name": name, "kind": kind})

    sites = [
        ("aws-eu-west-1", "AWS eu-west-1 (Ireland)", Location.Kind.CLOUD_REGION),
        ("azure-uksouth", "Azure UK South", Location.Kind.CLOUD_REGION),
        ("gcp-europe-west2", "GCP europe-west2 (London)", Location.Kind.CLOUD_REGION),
        ("dc-leeds", "Leeds data centre", Location.Kind.DATACENTER),
    ]
    for code, name, kind in sites:
        Location.objects.update_or_create(code=code, defaults={"name": name, "kind": kind})
    regions = {}
    for code, name, _ in REGIONS:
        regions[code], _ = Location.objects.update_or_create(
            code=f"region-{code}", defaults={"name": name, "kind": Location.Kind.REGION}
        )
    existing = set(Location.objects.filter(kind=Location.Kind.STORE).values_list("code", flat=True))
    stores, number = [], 0
    for code, name, count in REGIONS:
        for i in range(count):
            number += 1
            store_code = f"store-{number:04d}"
            if store_code not in existing:
                stores.append(
                    Location(
                        code=store_code,
                        name=f"{name} store {i + 1:03d}",
                        kind=Location.Kind.STORE,
                        parent=regions[code],
                    )
                )
    Location.objects.bulk_create(stores, batch_size=500)

    services = {}
    for slug, name, team, unit, description in SERVICES:
        services[slug], _ = Service.objects.update_or_create(
            slug=slug, defaults={"name": name, "team": teams[team], "unit_name": unit, "description": description}
        )
    locations = {loc.code: loc for loc in Location.objects.exclude(kind=Location.Kind.STORE)}
    for slug, name, rtype, env, loc, service, price in POOLS:
        CapacityPool.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "resource_type": rtype,
                "environment": envs[env],
                "location": locations.get(loc) if loc else None,
                "service": services.get(service) if service else None,
                "unit_price_per_hour": Decimal(price),
                "target_utilisation": Decimal("0.80") if rtype == "gpu" else Decimal("1.00"),
            },
        )
    for slug, name, task, service, team, versions in MODELS:
        model, _ = MLModel.objects.update_or_create(
            slug=slug, defaults={"name": name, "task": task, "service": services[service], "team": teams[team]}
        )
        for version, stage, mode in versions:
            ModelVersion.objects.update_or_create(
                model=model, version=version, defaults={"stage": stage, "deployment_mode": mode}
            )
    owners = {u.username: u for u in User.objects.filter(username__in=[p[3] for p in PRODUCTS])}
    for slug, name, service, owner, events in PRODUCTS:
        Product.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "service": services[service],
                "owner": owners.get(owner),
                "usage_event_names": events,
            },
        )
    log(
        f"catalog: {len(SERVICES)} services, {len(TEAMS)} teams, {len(MODELS)} models, {len(POOLS)} pools, "
        f"{len(PRODUCTS)} products, {sum(r[2] for r in REGIONS)} stores in {len(REGIONS)} regions"
    )
