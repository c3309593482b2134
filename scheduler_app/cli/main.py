"""The ``schedule`` console script: the command group with every command loaded."""

from __future__ import annotations

from scheduler_app.cli import editing, files, jobs, login, porting, runs, software
from scheduler_app.cli.app import cli

COMMAND_MODULES = (
    editing,
    files,
    jobs,
    login,
    porting,
    runs,
    software,
)  # each registers its commands


def main() -> None:
    cli(prog_name="schedule")
