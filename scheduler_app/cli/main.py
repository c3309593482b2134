"""The ``schedule`` console script: the command group with every command loaded."""

from __future__ import annotations

from scheduler_app.cli import editing, jobs, login, porting, runs
from scheduler_app.cli.app import cli

COMMAND_MODULES = (editing, jobs, login, porting, runs)  # each registers its commands


def main() -> None:
    cli(prog_name="schedule")
