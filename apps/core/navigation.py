"""The sidebar: which sections exist and which roles see them."""

from dataclasses import dataclass

from django.urls import reverse

from apps.accounts.roles import Role

ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    icon: str
    roles: frozenset[Role] = ALL_ROLES
    section: str = "KPIs"


NAV: tuple[NavItem, ...] = (
    NavItem("Overview", "kpis:overview", "grid"),
    NavItem("Unit cost", "billing:unit-cost", "coin"),
    NavItem("Cost explorer", "billing:explorer", "layers"),
    NavItem("Capacity", "capacity:overview", "server"),
    NavItem("Models", "telemetry:models", "cpu"),
    NavItem("Alerts", "alerts:list", "bell"),
    NavItem("Model health", "alerts:model-health", "heart"),
    NavItem("Functionality", "delivery:overview", "rocket"),
    NavItem("Adoption", "adoption:overview", "users"),
    NavItem("Catalog", "catalog:overview", "book", section="Organisation"),
    NavItem("Settings", "core:settings", "sliders", frozenset({Role.ADMIN}), section="Administration"),
    NavItem("Audit trail", "audit:list", "clock", frozenset({Role.ADMIN}), section="Administration"),
    NavItem("Admin site", "admin:index", "tool", frozenset({Role.ADMIN}), section="Administration"),
)


def nav_for(role: Role | None) -> list[tuple[str, list[NavItem]]]:
    sections: dict[str, list[NavItem]] = {}
    for item in NAV:
        if role in item.roles:
            sections.setdefault(item.section, []).append(item)
    return list(sections.items())


def active_item(path: str, sections: list[tuple[str, list[NavItem]]]) -> str | None:
    """The url_name of the sidebar entry a page belongs to: the entry whose address is the longest prefix of
    the page's (so an alert's page belongs to Alerts, /alerts/models/ to Model health); the overview, at
    the root, only for itself."""
    best, length = None, -1
    for _, items in sections:
        for item in items:
            url = reverse(item.url_name)
            matches = path == url if url == "/" else path.startswith(url)
            if matches and len(url) > length:
                best, length = item.url_name, len(url)
    return best
