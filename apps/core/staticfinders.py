"""Serve Plotly's JavaScript from the installed plotly package, as static/plotly/plotly.min.js."""

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_STATIC_PATH = "plotly/plotly.min.js"


def _plotly_js() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:  # pragma: no cover - plotly is a hard requirement
        raise RuntimeError("the plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path: str, find_all: bool = False, **kwargs):
        if path != PLOTLY_STATIC_PATH:
            return [] if find_all else None
        match = str(_plotly_js())
        return [match] if find_all else match

    def list(self, ignore_patterns):
        js = _plotly_js()
        storage = FileSystemStorage(location=str(js.parent))
        storage.prefix = "plotly"
        yield js.name, storage
