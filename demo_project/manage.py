#!/usr/bin/env python
"""Run Django's command-line utility for the demo shop."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
