"""The weekly KPI digest: the overview's figures by email (HTML with a CSV attachment) to subscribers."""

import csv
import io
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.csvexport import safe_cell
from apps.core.periods import Period, month_of

from .registry import KpiFilters
from .selectors import KPI_HEADER, kpi_rows, overview

logger = logging.getLogger(__name__)


def digest_period() -> Period:
    """The month of yesterday: on the first of a month the digest covers the month just ended."""
    return month_of(timezone.localdate() - timedelta(days=1))


def digest_send(*, period: Period | None = None) -> int:
    """Email every active subscriber with an address; returns how many were sent."""
    period = period or digest_period()
    values = overview(period=period, filters=KpiFilters())
    recipients = list(
        get_user_model().objects.filter(is_active=True, digest_subscribed=True).exclude(email="").order_by("pk")
    )
    if not recipients:
        return 0
    attachment = io.StringIO()
    writer = csv.writer(attachment)
    writer.writerow(["period", *KPI_HEADER])
    for row in kpi_rows(values):
        writer.writerow([period.key, *(safe_cell(v) for v in row)])
    base = settings.PORTAL_BASE_URL.rstrip("/")
    context = {"period": period, "kpis": values, "base_url": base}
    html = render_to_string("kpis/digest_email.html", context)
    text = render_to_string("kpis/digest_email.txt", context)
    messages = []
    for user in recipients:
        message = EmailMultiAlternatives(
            subject=f"opsportal KPI digest: {period.label}",
            body=text,
            to=[user.email],
            from_email=settings.DEFAULT_FROM_EMAIL,
        )
        message.attach_alternative(html, "text/html")
        message.attach(f"opsportal-kpis-{period.key}.csv", attachment.getvalue(), "text/csv")
        messages.append(message)
    with get_connection() as connection:
        sent = connection.send_messages(messages)
    logger.info("KPI digest for %s sent to %s of %s subscribers", period.key, sent, len(messages))
    return sent
