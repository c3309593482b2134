"""The ``schedule`` command group and what every command shares: ``-o``, ``--url``,
``--token``, the API client, turning a job's name into its id, and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from scheduler_app.cli import config, errors, output
from scheduler_app.cli.client import Client


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cronfleet", prog_name="schedule")
def cli() -> None:
    """Cronfleet's command line: define, run and watch scheduled jobs through the REST API.

    \b
    Start with:
      schedule login http://127.0.0.1:8000
      schedule create backup --command "tar czf /tmp/b.tgz /srv" --schedule "daily at 02:30"
      schedule list
      schedule run backup --wait

    Every command takes -o json|yaml (output for scripts), --url and --token.
    SCHEDULE_URL and SCHEDULE_TOKEN override the config file
    ($XDG_CONFIG_HOME/cronfleet/config.toml, written by `schedule login`).

    \b
    Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused (not logged in,
    or not allowed).
    """


@dataclass
class Session:
    """One command's view of the world: how to answer, and the API client (made when
    first needed, so usage errors and --help need no login)."""

    output: str
    settings: config.Settings
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings)
        return self._client

    @property
    def for_machines(self) -> bool:
        return self.output != "table"

    def show(self, data: Any, human: Callable[[], None]) -> None:
        """The API's ``data`` as JSON/YAML when asked, else what ``human`` prints."""
        if self.for_machines:
            output.machine(data, self.output)
        else:
            human()

    def job_id(self, ref: str) -> int:
        return resolve(self.client, "jobs", ref, "job")

    def template_id(self, ref: str) -> int:
        return resolve(self.client, "templates", ref, "template")

    def team_id(self, ref: str) -> int:
        return resolve(self.client, "teams", ref, "team")


def resolve(client: Client, collection: str, ref: str, noun: str) -> int:
    """A row's id from its id or its exact name. A reference of digits is an id."""
    if ref.isdigit():
        return int(ref)
    if collection == "jobs":
        found = list(client.pages("jobs/", name=ref, page_size=500))
    else:  # no name filter (templates, teams, files, software): few per user, read them all
        found = [row for row in client.pages(f"{collection}/", page_size=500) if row["name"] == ref]
    if not found:
        raise errors.CliError(f"Not found: no {noun} named {ref!r}.", errors.NOT_FOUND)
    if len(found) > 1:
        ids = ", ".join(str(row["id"]) for row in found)
        raise errors.CliError(f"Several {noun}s are named {ref!r} (ids {ids}): give the id.")
    return found[0]["id"]


def api_command(
    name: str | None = None, group: click.Group | None = None
) -> Callable[[Callable[..., Any]], click.Command]:
    """A ``schedule`` subcommand (of ``group``: ``schedule files upload``): the function
    gets a Session first, then its own options; a CliError becomes its message on stderr
    and its exit code."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        @click.option(
            "-o",
            "--output",
            "output_format",
            type=click.Choice(output.FORMATS),
            default="table",
            show_default=True,
            help="table for people; json or yaml (the API's answer) for scripts.",
        )
        @click.option(
            "--url", metavar="URL", help="The server (overrides SCHEDULE_URL and the config file)."
        )
        @click.option(
            "--token",
            metavar="TOKEN",
            help="The API token (overrides SCHEDULE_TOKEN and the config file).",
        )
        @functools.wraps(function)
        def command(output_format: str, url: str | None, token: str | None, **kwargs: Any) -> None:
            try:
                function(Session(output_format, config.resolve(url, token)), **kwargs)
            except errors.CliError as exc:
                output.say(exc.message)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:
                sys.exit(130)

        return (group or cli).command(name)(command)

    return decorate
