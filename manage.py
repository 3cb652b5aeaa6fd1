#!/usr/bin/env python
"""Django's command-line utility for opsportal."""

import gc
import os
import sys


def main() -> None:
    # --settings is honoured before the settings are loaded below (Django itself reads it only later).
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--settings="):
            os.environ["DJANGO_SETTINGS_MODULE"] = arg.split("=", 1)[1]
        elif arg == "--settings" and i + 1 < len(sys.argv):
            os.environ["DJANGO_SETTINGS_MODULE"] = sys.argv[i + 1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings.base")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load the settings now, so a configuration error reads plainly
    except ImproperlyConfigured as exc:
        sys.exit(f"opsportal: configuration error: {exc}")
    try:
        execute_from_command_line(sys.argv)
    finally:
        # The process ends here. Its objects need no collecting on the way out: Python's shutdown would run
        # full collections over every loaded module's objects (0.2 s once pyarrow and pandas are loaded).
        gc.freeze()


if __name__ == "__main__":
    main()
