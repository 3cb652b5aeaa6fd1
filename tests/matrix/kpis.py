from . import ADM, ANON, API_READ, EXE, PAGE, PM, Route

MATRIX = [
    Route("kpis:overview-export", "get", PAGE),
    Route("kpis:digest-send", "post", {ANON: 302, EXE: 403, PM: 403, ADM: 302}),
    Route("api-kpis", "get", API_READ),
]
