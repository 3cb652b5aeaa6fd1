"""The weekly digest goes through a real SMTP server on 127.0.0.1, to subscribers only, with its figures."""

import csv
import email
import io
import socket

import pytest
from aiosmtpd.controller import Controller
from django.core import mail

from apps.accounts.roles import Role
from apps.kpis.digest import digest_send
from apps.kpis.selectors import HEADLINES
from apps.kpis.tasks import weekly_digest_task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it by this name
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield inbox
    controller.stop()


def test_digest_reaches_subscribers_through_smtp_with_a_csv_of_the_overview(smtp):
    UserFactory(username="cfo-sub", email="cfo@example.com", digest_subscribed=True, role=Role.EXECUTIVE)
    UserFactory(username="pm-sub", email="pm@example.com", digest_subscribed=True, role=Role.PRODUCT_MANAGER)
    UserFactory(username="quiet", email="quiet@example.com", digest_subscribed=False)
    UserFactory(username="gone", email="gone@example.com", digest_subscribed=True, is_active=False)

    assert weekly_digest_task.apply().get() == 2

    assert sorted(rcpt[0] for rcpt, _ in smtp.messages) == ["cfo@example.com", "pm@example.com"]
    _, message = smtp.messages[0]
    assert message["Subject"].startswith("opsportal KPI digest: ")
    parts = {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}
    html = parts["text/html"].get_payload(decode=True).decode()
    for headline in HEADLINES:
        assert headline.title in html
    rows = list(csv.DictReader(io.StringIO(parts["text/csv"].get_payload(decode=True).decode())))
    assert [r["kpi"] for r in rows][: len(HEADLINES)] == [h.key for h in HEADLINES]


def test_digest_figures_are_the_overviews(smtp):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from apps.billing.models import BillingSource, CostRollup
    from apps.kpis.digest import digest_period

    period = digest_period()
    day = period.start + timedelta(days=min(3, period.days - 1))
    source = BillingSource.objects.create(name="aws")
    for cost in (Decimal("1000.50"), Decimal("234.06")):  # 1,234.56 by hand
        CostRollup.objects.create(
            day=day,
            source=source,
            billing_period_start=period.start,
            currency="USD",
            billed_cost=cost,
            effective_cost=cost,
        )
    UserFactory(username="cfo-sub", email="cfo@example.com", digest_subscribed=True)
    assert digest_send() == 1
    _, message = smtp.messages[0]
    parts = {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}
    assert "1,234.56 USD" in parts["text/html"].get_payload(decode=True).decode()
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(parts["text/csv"].get_payload(decode=True).decode()))}
    assert Decimal(rows["cloud_cost"]["value"]) == Decimal("1234.56")
    assert rows["cloud_cost"]["period"] == period.key
    assert timezone.localdate() >= period.start


def test_no_subscriber_means_no_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    UserFactory(username="quiet", email="quiet@example.com", digest_subscribed=False)
    assert digest_send() == 0
    assert mail.outbox == []


def test_only_an_admin_can_send_the_digest_now(role_client, django_capture_on_commit_callbacks):
    assert role_client(Role.EXECUTIVE).post("/digest/send/").status_code == 403
    with django_capture_on_commit_callbacks() as callbacks:
        response = role_client(Role.ADMIN).post("/digest/send/")
    assert response.status_code == 302
    assert len(callbacks) == 1  # queued once the request's transaction commits
