from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import views as core_views

admin.site.site_header = "opsportal administration"
admin.site.site_title = "opsportal admin"

# Each app mounts its own API routes under /api/v1/, with full paths in its api/urls.py.
API_APPS = ["accounts", "billing", "telemetry", "capacity", "delivery", "adoption", "alerts", "kpis", "audit"]
api_v1 = [
    path("catalog/", include("apps.catalog.api.urls")),
    *(path("", include(f"apps.{app}.api.urls")) for app in API_APPS),
]

# An unknown URL under /api/ answers JSON, like every other API error.
handler404 = "apps.core.api_errors.page_not_found"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("", include("apps.kpis.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("catalog/", include("apps.catalog.urls")),
    path("costs/", include("apps.billing.urls")),
    path("capacity/", include("apps.capacity.urls")),
    path("models/", include("apps.telemetry.urls")),
    path("alerts/", include("apps.alerts.urls")),
    path("functionality/", include("apps.delivery.urls")),
    path("adoption/", include("apps.adoption.urls")),
    path("settings/audit/", include("apps.audit.urls")),
    path("settings/", include("apps.core.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs page is for people: anonymous visitors are sent to the login form, not given a 401.
    # The split view serves its start-up script from the same URL (?script=), so the page needs no
    # inline script under the Content-Security-Policy.
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
]
