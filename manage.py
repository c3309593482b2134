#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path

from django.core.management import execute_from_command_line


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The embedded defaults keep their files here (SQLite, Redis data, job dirs).
    Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent / "var")).mkdir(exist_ok=True)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
