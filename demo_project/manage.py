#!/usr/bin/env python
"""Run Django's command-line utility for the demo shop."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Exit status for settings refused by the environment (2: a usage error, as argparse uses).
BAD_SETTINGS = 2


def load_settings_or_exit() -> None:
    """Load the settings now, so a bad environment value ends in one line, not a traceback.

    config.settings raises ImproperlyConfigured for a missing secret key or a DATABASE_URL or
    CACHE_URL it cannot use; its message already says what to set. Other errors keep Django's
    own handling.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 (the attribute access imports the settings module)
    except ImproperlyConfigured as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message's layout
        print(f"error: {message}", file=sys.stderr)
        sys.exit(BAD_SETTINGS)
    except ImportError:
        return  # no such settings module: Django reports that itself (and `help` still works)


def main() -> None:
    """Run a management command with the demo project's settings."""
    # The script's folder is already on sys.path when run as a file; adding it also covers
    # `python -m` and other launchers, so `config` and `shop` import from anywhere.
    project_dir = str(Path(__file__).resolve().parent)
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Is the virtualenv active? "
            "Try: pip install -r requirements.txt && pip install -e ."
        ) from exc
    load_settings_or_exit()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
