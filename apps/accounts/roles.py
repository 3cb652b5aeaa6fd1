from enum import StrEnum


class Role(StrEnum):
    """What a person may do in the portal.

    - Executive (CIO/CFO): reads every KPI page and export, changes nothing.
    - Product manager: reads everything; edits targets and adoption data for the products they own.
    - Admin: configures thresholds, data sources, schedules, targets and users.
    """

    EXECUTIVE = "executive"
    PRODUCT_MANAGER = "product_manager"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return {"executive": "Executive", "product_manager": "Product manager", "admin": "Admin"}[self.value]
