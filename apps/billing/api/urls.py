"""API routes of this app, mounted under /api/v1/ (full paths here, e.g. "billing/...")."""

urlpatterns: list = []
