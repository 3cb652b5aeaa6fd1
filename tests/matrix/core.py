from apps.accounts.models import ApiToken

from . import ADM, ADMIN_PAGE, ANON, API_READ, EXE, PAGE, PM, Route


def _token_pk() -> dict:
    return {"pk": ApiToken.objects.get(name="matrix-token").pk}


def setup(users) -> None:
    ApiToken.objects.create(user=users[ADM], name="matrix-token", prefix="matrixpx", key_hash="0" * 64)


MATRIX = [
    Route("healthz", "get", {ANON: 200, EXE: 200, PM: 200, ADM: 200}),
    Route("kpis:overview", "get", PAGE),
    Route("billing:unit-cost", "get", PAGE),
    Route("billing:explorer", "get", PAGE),
    Route("capacity:overview", "get", PAGE),
    Route("telemetry:models", "get", PAGE),
    Route("alerts:list", "get", PAGE),
    Route("delivery:overview", "get", PAGE),
    Route("adoption:overview", "get", PAGE),
    Route("catalog:overview", "get", PAGE),
    Route("core:settings", "get", ADMIN_PAGE),
    Route("accounts:login", "get", {ANON: 200, EXE: 302, PM: 302, ADM: 302}),
    Route("accounts:logout", "post", {ANON: 302, EXE: 302, PM: 302, ADM: 302}),
    Route("accounts:account", "get", PAGE),
    Route("accounts:token-create", "post", {ANON: 302, EXE: 200, PM: 200, ADM: 200}),  # 200: form errors shown
    # Only the owner (the admin here) finds the token; others get 404, never someone else's token.
    Route("accounts:token-revoke", "post", {ANON: 302, EXE: 404, PM: 404, ADM: 302}, kwargs=_token_pk),
    Route("accounts:digest", "post", {ANON: 302, EXE: 302, PM: 302, ADM: 302}),
    Route("api-schema", "get", API_READ),
    Route("api-docs", "get", PAGE),
    Route("api-me", "get", API_READ),
    Route("api-token-list", "get", API_READ),
    Route("api-token-list", "post", {ANON: 401, EXE: 400, PM: 400, ADM: 400}, json=True),  # own tokens
    Route("api-token-detail", "delete", {ANON: 401, EXE: 404, PM: 404, ADM: 204}, kwargs=_token_pk),
]
