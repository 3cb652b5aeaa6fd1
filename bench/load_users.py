"""The simulated people of bench/load.py: locust users of each role, signing in and browsing with think time.

Imported by bench/load.py after its setup (importing locust patches the standard library for gevent). Every
request must answer 200 with the page's own content (a sign-in: a 302 to the overview); anything else is
recorded as an error with what was wrong.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from dataclasses import dataclass
from typing import NamedTuple

import gevent
from locust import FastHttpUser, between, task
from locust.env import Environment
from locust.exception import StopUser

STATIC = re.compile(r'(?:href|src)="(/static/[^"]+)"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

SETUP: dict = {}
_ACCOUNTS: dict[str, itertools.cycle] = {}
_CLOCK = {"started": 0.0}
_SIGNED_IN: list[float] = []  # seconds from the start at which each user had signed in


class Request(NamedTuple):
    method: str
    name: str
    ms: float
    error: str | None
    at: float  # seconds from the start of the run when the request was sent


@dataclass
class Result:
    requests: list[Request]
    elapsed: float  # seconds from the first user's start to the stop
    problems: list[str]  # exceptions raised by the users' code outside a request
    signed_in_at: float | None  # when the last user had signed in (None: not all did)


class PortalUser(FastHttpUser):
    """Signs in through the login form like a browser, then browses; fetches each static file once (a cache)."""

    abstract = True
    role = ""
    wait_time = between(1, 4)

    def on_start(self) -> None:
        account = next(_ACCOUNTS[self.role])
        self.username, self.token, self.product = account["username"], account["token"], account["product"]
        self.static_seen: set[str] = set()
        self.period = SETUP["periods"][0]
        self.sign_in(account["password"])
        _SIGNED_IN.append(time.monotonic() - _CLOCK["started"])

    # -- requests --------------------------------------------------------------------------------------------

    def sign_in(self, password: str) -> None:
        with self.client.get("/accounts/login/", name="/accounts/login/", catch_response=True) as response:
            match = CSRF.search(response.text or "") if response.status_code == 200 else None
            if match is None:
                response.failure(f"HTTP {response.status_code}, no sign-in form")
                raise StopUser  # recorded as a failed request; this user browses no further
            response.success()
        self.fetch_static(response.text)
        with self.client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": match[1], "username": self.username, "password": password, "next": ""},
            headers={"Referer": f"{self.host}/accounts/login/"},
            name="/accounts/login/",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("Location", "")
            if response.status_code != 302 or location not in ("/", f"{self.host}/"):
                response.failure(f"sign-in of {self.username}: HTTP {response.status_code} to {location!r}")
                raise StopUser  # recorded as a failed request; this user browses no further
            response.success()

    def fetch_static(self, html: str) -> None:
        for path in STATIC.findall(html or ""):
            if path in self.static_seen:
                continue
            self.static_seen.add(path)
            with self.client.get(path, name="/static/[file]", catch_response=True) as response:
                if response.status_code != 200 or not response.content:
                    response.failure(f"{path}: HTTP {response.status_code}")

    def page(self, path: str, marker: str, *, name: str, headers: dict | None = None, partial: bool = False) -> None:
        """GET a page: 200, not redirected, containing ``marker``; a full page also brings its static files."""
        with self.client.get(
            path, name=name, headers=headers or {}, allow_redirects=False, catch_response=True
        ) as response:
            text = response.text or ""
            if response.status_code != 200:
                where = response.headers.get("Location")
                response.failure(f"HTTP {response.status_code}" + (f" to {where}" if where else ""))
                return
            if marker not in text:
                response.failure(f"{marker!r} missing from the page")
                return
            if partial and "<html" in text[:500].lower():
                response.failure("a whole page instead of the htmx fragment")
                return
            response.success()
        if not partial:
            self.fetch_static(text)

    def api(self, path: str, *, name: str, check) -> None:
        """GET an API endpoint with the user's read token: 200 and JSON that passes ``check``."""
        with self.client.get(
            path,
            name=name,
            headers={"Authorization": f"Token {self.token}", "Accept": "application/json"},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                body = json.loads(response.text)
            except (TypeError, ValueError):
                response.failure("not JSON")
                return
            problem = check(body)
            if problem:
                response.failure(problem)
            else:
                response.success()

    def pick_period(self) -> str:
        # Mostly this month, sometimes last month or the quarter, as the period picker would be used.
        self.period = random.choices(SETUP["periods"], weights=[6, 3, 1])[0]
        return self.period


def _kpis_ok(body) -> str | None:
    kpis = body.get("kpis") if isinstance(body, dict) else None
    return None if kpis else "no KPIs in the answer"


def _list_ok(body) -> str | None:
    if isinstance(body, dict) and "results" in body:
        body = body["results"]
    return None if isinstance(body, list) else "not a list"


class Executive(PortalUser):
    role = "executive"

    @task(4)
    def overview(self) -> None:
        self.page(f"/?period={self.pick_period()}", "<h1>Overview</h1>", name="/?period=[period]")

    @task(3)
    def overview_tiles(self) -> None:
        """What the filter form's htmx request asks for: only the tiles, for a service, team, environment or region."""
        cut, values = random.choice(
            [
                ("service", SETUP["services"]),
                ("team", SETUP["teams"]),
                ("environment", SETUP["environments"]),
                ("location", SETUP["regions"]),
            ]
        )
        value = random.choice(values) if values else ""
        self.page(
            f"/?period={self.period}&{cut}={value}",
            'id="kpi-tiles"',
            name="/?period=[period]&[filter] (htmx tiles)",
            headers={"HX-Request": "true", "HX-Target": "kpi-tiles", "HX-Current-URL": f"{self.host}/"},
            partial=True,
        )

    @task(2)
    def unit_cost(self) -> None:
        self.page(f"/costs/?period={self.period}", "Unit cost of service", name="/costs/?period=[period]")

    @task(1)
    def cost_explorer(self) -> None:
        self.page(f"/costs/explorer/?period={self.period}", "Cost explorer", name="/costs/explorer/?period=[period]")

    @task(2)
    def capacity(self) -> None:
        self.page(f"/capacity/?period={self.period}", "Capacity and waste", name="/capacity/?period=[period]")

    @task(1)
    def capacity_pool(self) -> None:
        if SETUP["pools"]:
            pool = random.choice(SETUP["pools"])
            self.page(f"/capacity/pools/{pool}/", "Capacity</a>", name="/capacity/pools/[slug]/")

    @task(2)
    def adoption(self) -> None:
        self.page(f"/adoption/?period={self.period}", "<h1>Adoption</h1>", name="/adoption/?period=[period]")

    @task(2)
    def kpi_api(self) -> None:
        self.api(
            f"/api/v1/kpis/?period={self.pick_period()}", name="/api/v1/kpis/?period=[period] (token)", check=_kpis_ok
        )


class ProductManager(PortalUser):
    role = "product_manager"

    def query(self) -> str:
        return f"?product={self.product}&period={self.period}"

    @task(3)
    def adoption(self) -> None:
        self.pick_period()
        self.page(f"/adoption/{self.query()}", "<h1>Adoption</h1>", name="/adoption/?product=[slug]")

    @task(1)
    def retention(self) -> None:
        self.page(
            f"/adoption/retention/{self.query()}", "<h1>Adoption</h1>", name="/adoption/retention/?product=[slug]"
        )

    @task(1)
    def nps(self) -> None:
        self.page(f"/adoption/nps/{self.query()}", "<h1>Adoption</h1>", name="/adoption/nps/?product=[slug]")

    @task(1)
    def locations(self) -> None:
        self.page(
            f"/adoption/locations/{self.query()}", "<h1>Adoption</h1>", name="/adoption/locations/?product=[slug]"
        )

    @task(1)
    def targets(self) -> None:
        self.page(f"/adoption/targets/{self.query()}", "<h1>Adoption</h1>", name="/adoption/targets/?product=[slug]")

    @task(2)
    def functionality(self) -> None:
        self.page(
            f"/functionality/?period={self.period}",
            "Cost of creating functionality",
            name="/functionality/?period=[period]",
        )

    @task(1)
    def delivery_activity(self) -> None:
        self.page("/functionality/activity/", "Deployments and incidents", name="/functionality/activity/")

    @task(1)
    def adoption_api(self) -> None:
        self.api(
            f"/api/v1/adoption/summary/{self.query()}",
            name="/api/v1/adoption/summary/?product=[slug] (token)",
            check=_list_ok,
        )

    @task(1)
    def overview(self) -> None:
        self.page(f"/?period={self.period}", "<h1>Overview</h1>", name="/?period=[period]")


class Admin(PortalUser):
    role = "admin"

    @task(2)
    def settings(self) -> None:
        self.page("/settings/", "<h1>Settings</h1>", name="/settings/")

    @task(2)
    def alerts(self) -> None:
        self.page("/alerts/", "<h1>Alerts</h1>", name="/alerts/")

    @task(1)
    def alert_rules(self) -> None:
        self.page("/alerts/rules/", "<h1>Alert rules</h1>", name="/alerts/rules/")

    @task(1)
    def alert_rule(self) -> None:
        if SETUP["alert_rules"]:
            rule = random.choice(SETUP["alert_rules"])
            self.page(f"/alerts/rules/{rule}/", "<h1>", name="/alerts/rules/[id]/")

    @task(1)
    def silences(self) -> None:
        self.page("/alerts/silences/", "<h1>Silences</h1>", name="/alerts/silences/")

    @task(1)
    def channels(self) -> None:
        self.page("/alerts/channels/", "<h1>Notification channels</h1>", name="/alerts/channels/")

    @task(1)
    def audit(self) -> None:
        self.page("/alerts/audit/", "<h1>Audit trail</h1>", name="/alerts/audit/")

    @task(1)
    def model_health(self) -> None:
        self.page("/alerts/models/", "<h1>Model health</h1>", name="/alerts/models/")

    @task(2)
    def billing_sources(self) -> None:
        self.page("/costs/sources/", "Billing sources", name="/costs/sources/")

    @task(1)
    def billing_source(self) -> None:
        source = random.choice(SETUP["billing_sources"])
        self.page(f"/costs/sources/{source}/", "<h1>", name="/costs/sources/[id]/")

    @task(1)
    def allocation_rules(self) -> None:
        self.page("/costs/rules/", "<h1>Allocation rules</h1>", name="/costs/rules/")

    @task(1)
    def sources_api(self) -> None:
        self.api("/api/v1/billing/sources/", name="/api/v1/billing/sources/ (token)", check=_list_ok)


USER_CLASSES = [Executive, ProductManager, Admin]


def run(
    *, host: str, setup: dict, users: int, spawn_rate: float, duration: float, think: tuple[float, float]
) -> Result:
    """Start ``users`` users at ``spawn_rate`` per second and stop them all after ``duration`` seconds."""
    SETUP.clear()
    SETUP.update(setup)
    _ACCOUNTS.clear()
    for role in ("executive", "product_manager", "admin"):
        _ACCOUNTS[role] = itertools.cycle([a for a in setup["accounts"] if a["role"] == role])
    for cls in USER_CLASSES:
        cls.wait_time = between(*think)
    _SIGNED_IN.clear()
    requests: list[Request] = []

    def on_request(request_type, name, response_time, exception=None, start_time=None, **kwargs):
        at = (start_time - wall_start) if start_time else time.monotonic() - _CLOCK["started"]
        error = None if exception is None else str(exception)[:300]
        requests.append(Request(request_type, name, response_time, error, at))

    env = Environment(user_classes=USER_CLASSES, host=host)
    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    _CLOCK["started"], wall_start = time.monotonic(), time.time()
    runner.start(users, spawn_rate=spawn_rate)
    stopper = gevent.spawn_later(duration, runner.quit)
    try:
        runner.greenlet.join()
    finally:
        stopper.kill()
        if runner.state not in ("stopped", "quitting"):
            runner.quit()
    elapsed = time.monotonic() - _CLOCK["started"]
    problems = [f"{error['count']} x {error['msg']}\n{error['traceback']}" for error in runner.exceptions.values()]
    signed_in_at = max(_SIGNED_IN) if len(_SIGNED_IN) >= users else None
    return Result(requests, elapsed, problems, signed_in_at)
