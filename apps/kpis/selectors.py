from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    key: str
    title: str
    url_name: str
    source: str
    value: str | None = None
    unit: str = ""


def overview_tiles() -> list[Tile]:
    """Headline KPIs. A tile without a value says which data source will feed it."""
    return [
        Tile("unit_cost", "Unit cost of service", "billing:unit-cost", "billing exports"),
        Tile("cloud_cost", "Total cloud cost", "billing:explorer", "billing exports"),
        Tile("capacity_waste", "Capacity waste cost", "capacity:overview", "capacity telemetry"),
        Tile("cost_per_feature", "Cost per feature", "delivery:overview", "delivery data"),
        Tile("model_sla", "Model SLA health", "alerts:list", "alert rules"),
        Tile("mau", "Monthly active users", "adoption:overview", "product events"),
        Tile("nps", "NPS", "adoption:overview", "survey responses"),
    ]
