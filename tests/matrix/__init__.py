"""The permission matrix, one module per app: each lists its routes with the status every role gets.

A module defines ``MATRIX`` (a list of :class:`Route`) and optionally ``setup(users)``, which creates
the objects its routes' ``kwargs`` refer to. tests/test_permission_matrix.py collects every module.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from apps.accounts.roles import Role

ANON = None
EXE, PM, ADM = Role.EXECUTIVE, Role.PRODUCT_MANAGER, Role.ADMIN
ROLES = [ANON, EXE, PM, ADM]

PAGE = {ANON: 302, EXE: 200, PM: 200, ADM: 200}  # every role reads; anonymous goes to the login form
ADMIN_PAGE = {ANON: 302, EXE: 403, PM: 403, ADM: 200}
API_READ = {ANON: 401, EXE: 200, PM: 200, ADM: 200}
API_READ_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 200}
API_WRITE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 400}  # 400: allowed, then the empty body is refused
API_UPDATE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 200}
API_DELETE_ADMIN = {ANON: 401, EXE: 403, PM: 403, ADM: 204}


@dataclass(frozen=True)
class Route:
    """One request to make as each role.

    ``json``: send the body as JSON (API routes) rather than as a form. ``before``: called with the
    role just before the request, e.g. to remove rows that would block a permitted delete.
    """

    name: str
    method: str
    expected: dict
    kwargs: Callable[[], dict] | None = None
    data: dict = field(default_factory=dict)
    json: bool = False
    before: Callable[[object], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.name}"
