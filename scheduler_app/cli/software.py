"""``schedule software``: the catalogue ``software`` jobs install from (list, show,
create, edit, delete)."""

from __future__ import annotations

import sys
from typing import Any

import click

from scheduler_app.cli import errors, output
from scheduler_app.cli.app import Session, api_command, cli, resolve
from scheduler_app.cli.editing import edit_in_editor

SOFTWARE_FIELDS = ("id", "name", "description", "version", "install", "pip", "check",
                   "uninstall", "team", "owner", "created_at", "updated_at")  # fmt: skip
READ_ONLY = {"id", "owner", "created_at", "updated_at"}
# The options that set a field of the same name (--team is resolved to an id).
FIELD_OPTIONS = ("version", "install", "pip", "check", "uninstall", "description")


@cli.group("software")
def software() -> None:
    """The software catalogue: packages `software` jobs install, each with a version,
    an install command or a pip project, and a check that prints the installed version.

    \b
    Examples:
      schedule software create httpie --version 3.2.2 --pip httpie --check "http --version"
      schedule create tools --kind software --schedule manual \\
          --payload '{"packages": [{"name": "httpie", "version": "3.2.2"}]}'
    """


def entry_id(session: Session, ref: str) -> int:
    return resolve(session.client, "software", ref, "software entry")


def show_entry(session: Session, row: dict[str, Any]) -> None:
    def human() -> None:
        times = {key: output.when(row.get(key)) for key in ("created_at", "updated_at")}
        output.fields({**row, **times}, SOFTWARE_FIELDS)

    session.show(row, human)


def report(session: Session, row: dict[str, Any], done: str) -> None:
    how = f"pip {row['pip']}" if row.get("pip") else "its install command"
    session.show(row, lambda: output.say(
        f"{done} software {row['id']} ({row['name']}): version {row['version']}, by {how}."
    ))  # fmt: skip


def field_options(function: Any) -> Any:
    """The options that set a catalogue entry's fields (create and edit share them)."""
    options = [
        click.option("--version", "version", metavar="VERSION", help="The version to install."),
        click.option("--install", metavar="CMD", help="A shell command that installs it."),
        click.option("--pip", metavar="PROJECT", help="Or a pip project, at --version."),
        click.option("--check", metavar="CMD", help="Prints the version installed."),
        click.option("--uninstall", metavar="CMD", help="A shell command that removes it."),
        click.option("--description", metavar="TEXT"),
        click.option("--team", metavar="TEAM", help="Share it with a team (id or name)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def body_of(session: Session, options: dict[str, Any]) -> dict[str, Any]:
    """The fields given on the command line, as the API spells them."""
    body = {key: options[key] for key in FIELD_OPTIONS if options[key] is not None}
    if options["team"] is not None:
        body["team"] = session.team_id(options["team"])
    return body


@api_command("list", group=software)
def list_software(session: Session) -> None:
    """List the catalogue entries you may use (all pages).

    \b
    Examples:
      schedule software list
      schedule software list -o yaml
    """
    rows = list(session.client.pages("software/", page_size=500))

    def human() -> None:
        if not rows:
            output.say("The catalogue is empty. Add to it with `schedule software create NAME`.")
            return
        output.table(
            ["ID", "NAME", "VERSION", "INSTALLED BY", "CHECK", "OWNER", "TEAM"],
            [[str(row["id"]), row["name"], row["version"],
              f"pip {row['pip']}" if row["pip"] else row["install"], row["check"],
              row["owner"], row["team"]]
             for row in rows],
        )  # fmt: skip

    session.show(rows, human)


@api_command("show", group=software)
@click.argument("entry")
def show(session: Session, entry: str) -> None:
    """Show a catalogue entry (by id or name).

    \b
    Example:
      schedule software show httpie
    """
    show_entry(session, session.client.get(f"software/{entry_id(session, entry)}/"))


@api_command("create", group=software)
@click.argument("name")
@field_options
def create(session: Session, name: str, **options: Any) -> None:
    """Add a catalogue entry (needs the code right: its commands run on workers).

    \b
    Examples:
      schedule software create httpie --version 3.2.2 --pip httpie --check "http --version"
      schedule software create nginx --version 1.24 --install "apt-get install -y nginx" \\
          --check "nginx -v 2>&1 | cut -d/ -f2" --team ops
    """
    if options["version"] is None or options["check"] is None:
        raise click.UsageError("--version and --check are required.")
    row = session.client.post("software/", {"name": name, **body_of(session, options)})
    report(session, row, "Created")


@api_command("edit", group=software)
@click.argument("entry")
@click.option("--name", metavar="NAME", help="A new name.")
@field_options
def edit(session: Session, entry: str, name: str | None, **options: Any) -> None:
    """Change a catalogue entry: the fields given as options, or (with none) all of
    them as YAML in $VISUAL or $EDITOR.

    \b
    Examples:
      schedule software edit httpie --version 3.2.4
      schedule software edit 4
    """
    path = f"software/{entry_id(session, entry)}/"
    patch = body_of(session, options) | ({"name": name} if name is not None else {})
    if patch:
        report(session, session.client.json("PATCH", path, json=patch), "Saved")
        return
    edit_in_editor(session, path, READ_ONLY,
                   lambda saved, fields: report(session, saved, f"Saved {', '.join(fields)} of"),
                   noun="Software")  # fmt: skip


@api_command("delete", group=software)
@click.argument("entry")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (nor does a non-terminal).")
def delete(session: Session, entry: str, yes: bool) -> None:
    """Delete a catalogue entry; refused, with the jobs installing it, while any does.

    \b
    Example:
      schedule software delete httpie --yes
    """
    row_id = entry_id(session, entry)
    if not yes and sys.stdin.isatty():
        found = session.client.get(f"software/{row_id}/")
        if not click.confirm(f"Delete software {row_id} ({found['name']})?", err=True):
            raise errors.CliError("Nothing deleted.")
    session.client.json("DELETE", f"software/{row_id}/")
    session.show({"deleted": row_id}, lambda: output.say(f"Deleted software {row_id}."))
