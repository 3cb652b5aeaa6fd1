"""NPS: the score with n and its interval, the survey answered once per campaign, answers by API."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import Role
from apps.adoption import selectors
from apps.adoption.models import NpsResponse
from apps.adoption.nps import NpsScore
from apps.adoption.services import nps_campaign_create
from apps.core.periods import month_of
from tests.factories import UserFactory

from .factories import make_catalog, write_token


@pytest.mark.parametrize(
    ("counts", "score", "low", "high"),
    [
        ((5, 3, 2), "30.0", "-19.1", "65.2"),  # n' = 13, p = 5.75/13, d = 2.75/13
        ((3, 0, 0), "100.0", "-6.6", "100.0"),  # the upper end clipped at 100
        ((40, 35, 25), "15.0", "-0.7", "29.8"),
        ((0, 0, 4), "-100.0", "-100.0", "-6.9"),
    ],
)
def test_nps_and_its_adjusted_wald_interval(counts, score, low, high):
    s = NpsScore(*counts)
    assert s.n == sum(counts)
    assert s.score == D(score)
    assert s.interval == (D(low), D(high))
    assert f"n = {s.n}" in s.label


def test_no_responses_is_said_not_zero():
    s = NpsScore(0, 0, 0)
    assert s.score is None and s.interval is None
    assert s.label == "no responses"


@pytest.fixture
def campaign(db):
    catalog = make_catalog()
    today = timezone.localdate()
    campaign = nps_campaign_create(
        actor=catalog["owner"], product=catalog["products"]["alpha"], name="Pulse", opens_on=today - timedelta(days=5)
    )
    return campaign


def test_an_employee_answers_the_survey_once(client, campaign):
    employee = UserFactory(username="store-colleague", role=Role.EXECUTIVE)
    client.force_login(employee)
    url = reverse("adoption:survey", args=[campaign.slug])
    page = client.get(url).content.decode()
    assert "How likely are you to recommend Alpha to a colleague?" in page

    response = client.post(url, {"score": "9", "comment": "Saves me time"})
    assert response.status_code == 302
    answered = client.get(url).content.decode()
    assert "You answered <strong>9</strong>" in answered
    assert 'name="score"' not in answered

    again = client.post(url, {"score": "2"})
    assert again.status_code == 400
    assert "store-colleague has already answered “Pulse”" in again.content.decode()
    assert list(NpsResponse.objects.values_list("respondent", "score", "comment")) == [
        ("store-colleague", 9, "Saves me time")
    ]


def test_a_score_outside_0_to_10_is_refused(client, campaign):
    client.force_login(UserFactory(username="someone"))
    response = client.post(reverse("adoption:survey", args=[campaign.slug]), {"score": "11"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not NpsResponse.objects.exists()


def test_a_closed_campaign_takes_no_answers(client, campaign):
    campaign.closes_on = timezone.localdate() - timedelta(days=1)
    campaign.save()
    client.force_login(UserFactory(username="late-comer"))
    url = reverse("adoption:survey", args=[campaign.slug])
    assert "This survey is closed" in client.get(url).content.decode()
    response = client.post(url, {"score": "8"})
    assert response.status_code == 400
    assert "is not open on" in response.content.decode()


def test_answers_by_api_count_once_per_person_and_campaign(client, campaign):
    key = write_token(campaign.product.owner)
    now = timezone.now()

    def post(responses):
        return client.post(
            "/api/v1/nps/responses/",
            {"responses": responses},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {key}",
        )

    first = post(
        [
            {"campaign": campaign.slug, "user_id": "emp-1", "score": 10},
            {"campaign": campaign.slug, "user_id": "emp-2", "score": 6, "comment": "slow"},
            {"campaign": campaign.slug, "user_id": "emp-1", "score": 3},  # a second answer in the same call
        ]
    )
    assert first.json() == {"accepted": 2, "duplicates": 1}
    second = post([{"campaign": campaign.slug, "user_id": "emp-2", "score": 9, "submitted_at": now.isoformat()}])
    assert second.json() == {"accepted": 0, "duplicates": 1}
    assert dict(NpsResponse.objects.values_list("respondent", "score")) == {"emp-1": 10, "emp-2": 6}


def test_invalid_api_answers_are_listed_and_nothing_is_stored(client, campaign):
    key = write_token(campaign.product.owner)
    response = client.post(
        "/api/v1/nps/responses/",
        {
            "responses": [
                {"campaign": campaign.slug, "user_id": "emp-1", "score": 7},
                {"campaign": "nope", "user_id": "emp-2", "score": 7},
                {"campaign": campaign.slug, "user_id": "emp-3", "score": 11},
                {"campaign": campaign.slug, "user_id": "emp-4", "score": 7, "submitted_at": "2001-01-01T00:00:00Z"},
            ]
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 400
    errors = {(e["index"], e["field"]): e["message"] for e in response.json()["errors"]}
    assert errors == {
        (1, "campaign"): "unknown campaign 'nope'",
        (2, "score"): "the score must be a whole number from 0 to 10, got 11",
        (3, "submitted_at"): f"campaign '{campaign.slug}' is not open on 2001-01-01",
    }
    assert not NpsResponse.objects.exists()


def test_the_nps_page_and_api_show_the_score_with_n(client, campaign):
    now = timezone.now()
    for i, score in enumerate([10, 9, 9, 8, 7, 6, 3, 10]):
        NpsResponse.objects.create(
            campaign=campaign, product=campaign.product, respondent=f"e{i}", score=score, submitted_at=now, source="api"
        )
    # 4 promoters, 2 passives, 2 detractors: NPS = 100 x (4 - 2) / 8 = 25.0
    client.force_login(campaign.product.owner)
    api = client.get("/api/v1/adoption/nps/?product=alpha").json()
    assert (api["nps"], api["n"], api["promoters"], api["passives"], api["detractors"]) == ("25.0", 8, 4, 2, 2)
    assert api["distribution"] == [0, 0, 0, 1, 0, 0, 1, 1, 1, 2, 2]
    html = client.get(reverse("adoption:nps") + "?product=alpha").content.decode()
    assert "n = 8 responses" in html
    assert "+25.0" in html


def test_nps_by_month_counts_responses_in_their_month(db):
    catalog = make_catalog()
    campaign = nps_campaign_create(
        actor=catalog["owner"], product=catalog["products"]["beta"], name="Spring", opens_on=date(2025, 3, 1)
    )
    scores = {date(2025, 3, 31): [10, 0], date(2025, 4, 1): [9, 9, 7]}
    i = 0
    for day, values in scores.items():
        for score in values:
            NpsResponse.objects.create(
                campaign=campaign,
                product=campaign.product,
                respondent=f"r{i}",
                score=score,
                submitted_at=datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC),
                source="api",
            )
            i += 1
    scope = selectors.resolve_scope(product="beta")
    march, april = selectors.period_values(
        scope, [month_of(date(2025, 3, 1)), month_of(date(2025, 4, 1))], as_of=datetime(2025, 5, 1, tzinfo=UTC)
    )
    assert (march.nps.n, march.values["nps"]) == (2, D("0.0"))
    assert (april.nps.n, april.values["nps"]) == (3, D("66.7"))
