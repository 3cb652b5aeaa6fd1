"""A small delivery history whose every figure is worked out by hand in the tests (times are UTC).

Teams: alpha (100.00/h, service svc-a), beta (80.00/h, 5 hours per story point, service svc-b).

Commits:            c1 Jan 30 10:00, c2 Jan 31 08:00, c3 Feb 2 09:00, c4 Feb 3 12:00, c5 Feb 10 09:00,
                    c6 Feb 11 09:00 (never deployed), c7 Feb 20 10:00
Deployments (prod unless said):
  D1 svc-a success Jan 31 12:00  c2 + c1
  D2 svc-a FAILURE Feb 3 15:00   c4 + c3
  D3 svc-a success Feb 4 10:00   c4 + c3
  D4 svc-a success Feb 10 10:00  c5, to dev (not production)
  D5 svc-b success Feb 12 09:00  c5
  D6 svc-b FAILURE Feb 21 10:00  c7
  D7 svc-b success Mar 2 10:00   c7
  D8 svc-a success Feb 25 10:00  c2 again (a redeploy: c2 was already live since Jan 31)
Incidents:
  I1 svc-a <- D3  Feb 4 11:00 .. Feb 4 14:30 (3.5 h)
  I5 svc-a <- D3  Feb 5 09:00 .. Feb 5 10:00 (1 h)
  I2 svc-b <- D5  Feb 28 22:00 .. Mar 1 04:00 (6 h, spans two months)
  I3 svc-a, no deployment, Jan 31 20:00 .. Feb 1 02:00 (6 h, spans two months)
  I4 svc-b <- D7  Mar 3 09:00, still open
Features:
  F1 alpha svc-a 40 h      [c1 c2]  ships with D1, Jan 31
  F2 alpha svc-a 10 h      [c3 c4]  ships with D3 (D2 failed), Feb 4
  F3 beta  svc-b 8 points  [c5]     = 40 h, ships with D5, Feb 12 (D4 went to dev only)
  F4 beta  svc-b 20 h      [c7]     D6 failed in Feb; ships with D7, Mar 2
  F5 alpha svc-a 30 h      [c6]     never deployed: not shipped
  F6 alpha svc-a 12 h      []       no changes: not shipped
  F7 beta  svc-b 6 h       [c5 c2]  c2 is live on svc-a only: not shipped
Billing (effective cost): svc-a dev Jan 20 100.00; svc-a dev Feb 10 300.00; svc-b uat Feb 15 500.00;
  svc-a prod Feb 10 9,999.00 (production: not counted); unallocated dev Feb 11 777.00 (no service: not
  counted). Nothing for March.
"""

from datetime import date
from decimal import Decimal

import pytest

from apps.delivery.services import team_delivery_profile_set

from .factories import environments, iso, rollup, send, sha, team_and_service

COMMITS = {
    "c1": (2026, 1, 30, 10),
    "c2": (2026, 1, 31, 8),
    "c3": (2026, 2, 2, 9),
    "c4": (2026, 2, 3, 12),
    "c5": (2026, 2, 10, 9),
    "c6": (2026, 2, 11, 9),
    "c7": (2026, 2, 20, 10),
}


def _deployment(dep_id, service, env, when, status, head, *others):
    return {
        "deployment_id": dep_id,
        "service": service,
        "environment": env,
        "deployed_at": iso(*when),
        "status": status,
        "commit": sha(head),
        "changes": [sha(o) for o in others],
    }


DEPLOYMENTS = [
    _deployment("D1", "svc-a", "prod", (2026, 1, 31, 12), "success", "c2", "c1"),
    _deployment("D2", "svc-a", "prod", (2026, 2, 3, 15), "failure", "c4", "c3"),
    _deployment("D3", "svc-a", "prod", (2026, 2, 4, 10), "success", "c4", "c3"),
    _deployment("D4", "svc-a", "dev", (2026, 2, 10, 10), "success", "c5"),
    _deployment("D5", "svc-b", "prod", (2026, 2, 12, 9), "success", "c5"),
    _deployment("D6", "svc-b", "prod", (2026, 2, 21, 10), "failure", "c7"),
    _deployment("D7", "svc-b", "prod", (2026, 3, 2, 10), "success", "c7"),
    _deployment("D8", "svc-a", "prod", (2026, 2, 25, 10), "success", "c2"),
]


def _incident(inc_id, service, started, resolved, deployment):
    return {
        "incident_id": inc_id,
        "service": service,
        "title": f"Incident {inc_id}",
        "started_at": iso(*started),
        "resolved_at": iso(*resolved) if resolved else None,
        "deployment_id": deployment,
    }


INCIDENTS = [
    _incident("I1", "svc-a", (2026, 2, 4, 11), (2026, 2, 4, 14, 30), "D3"),
    _incident("I5", "svc-a", (2026, 2, 5, 9), (2026, 2, 5, 10), "D3"),
    _incident("I2", "svc-b", (2026, 2, 28, 22), (2026, 3, 1, 4), "D5"),
    _incident("I3", "svc-a", (2026, 1, 31, 20), (2026, 2, 1, 2), None),
    _incident("I4", "svc-b", (2026, 3, 3, 9), None, "D7"),
]


def _feature(fid, team, service, effort, unit, *commits):
    return {
        "feature_id": fid,
        "title": f"Feature {fid}",
        "service": service,
        "team": team,
        "effort": effort,
        "effort_unit": unit,
        "changes": [sha(c) for c in commits],
    }


FEATURES = [
    _feature("F1", "alpha", "svc-a", "40", "hours", "c1", "c2"),
    _feature("F2", "alpha", "svc-a", "10", "hours", "c3", "c4"),
    _feature("F3", "beta", "svc-b", "8", "points", "c5"),
    _feature("F4", "beta", "svc-b", "20", "hours", "c7"),
    _feature("F5", "alpha", "svc-a", "30", "hours", "c6"),
    _feature("F6", "alpha", "svc-a", "12", "hours"),
    _feature("F7", "beta", "svc-b", "6", "hours", "c5", "c2"),
]


@pytest.fixture
def catalog(db):
    envs = environments()
    alpha, svc_a = team_and_service("alpha", "svc-a", "100.00")
    beta, svc_b = team_and_service("beta", "svc-b", "80.00")
    team_delivery_profile_set(team=beta, hours_per_point=Decimal("5.00"))
    return {"envs": envs, "alpha": alpha, "beta": beta, "svc-a": svc_a, "svc-b": svc_b}


@pytest.fixture
def history(catalog):
    """The whole history above, sent through the API importer in the order a real setup might."""
    send("changes", [{"commit": sha(c), "committed_at": iso(*t)} for c, t in COMMITS.items()])
    send("deployments", DEPLOYMENTS, source="ci")
    send("features", FEATURES, source="tracker")
    send("incidents", [{**i, "deployment_source": "ci"} for i in INCIDENTS], source="pager")
    envs = catalog["envs"]
    rollup(day=date(2026, 1, 20), service=catalog["svc-a"], environment=envs["dev"], cost="100.00")
    rollup(day=date(2026, 2, 10), service=catalog["svc-a"], environment=envs["dev"], cost="300.00")
    rollup(day=date(2026, 2, 15), service=catalog["svc-b"], environment=envs["uat"], cost="500.00")
    rollup(day=date(2026, 2, 10), service=catalog["svc-a"], environment=envs["prod"], cost="9999.00")
    rollup(day=date(2026, 2, 11), service=None, environment=envs["dev"], cost="777.00")
    return catalog
