"""``schedule files``: upload the files ``file`` jobs deploy, list them, delete them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from scheduler_app.cli import errors, output
from scheduler_app.cli.app import Session, api_command, cli, resolve

FILE_FIELDS = ("id", "name", "size", "sha256", "owner", "team", "created_at")
PROGRESS_FROM = 4 * 1024 * 1024  # bytes: smaller uploads end before a bar would help


@cli.group("files")
def files() -> None:
    """Files that `file` jobs deploy: upload one once, then name its id in a job.

    \b
    Examples:
      schedule files upload nginx.conf
      schedule create deploy-conf --kind file --schedule manual \\
          --payload '{"files": [3], "target_path": "/etc/nginx/conf.d"}'
    """


class Counted:
    """A file that calls ``advance`` with the size of each piece read from it (httpx
    reads an upload piece by piece); everything else is the file's own."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        self.handle = handle
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        piece = self.handle.read(size)
        self.advance(len(piece))
        return piece

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell: the size httpx sends
        return getattr(self.handle, name)


@contextlib.contextmanager
def progress(size: int) -> Iterator[Callable[[int], None]]:
    """How to report bytes sent: a bar on a terminal's stderr for a big file, else nothing."""
    if size < PROGRESS_FROM or not output.err.is_terminal:
        yield lambda _: None
        return
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task("upload", total=size)
        yield lambda sent: bar.advance(task, sent)


def show_file(session: Session, row: dict[str, Any], note: str = "") -> None:
    def human() -> None:
        shown = {**row, "size": f"{output.size(row['size'])} ({row['size']} bytes)",
                 "created_at": output.when(row.get("created_at"))}  # fmt: skip
        output.fields(shown, FILE_FIELDS)
        if note:
            output.say(note)

    session.show(row, human)


@api_command("upload", group=files)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", metavar="NAME", help="Its file name on nodes (default: PATH's).")
@click.option("--team", metavar="TEAM", help="Share it with a team (id or name).")
def upload(session: Session, path: Path, name: str | None, team: str | None) -> None:
    """Upload a file (multipart); shows its id, size and SHA-256.

    \b
    Examples:
      schedule files upload ./nginx.conf
      schedule files upload build/app.tar.gz --name app.tar.gz --team ops -o json
    """
    form = {"name": name or path.name}
    if team is not None:
        form["team"] = str(session.team_id(team))
    size = path.stat().st_size
    with path.open("rb") as handle, progress(size) as advance:
        sent = Counted(handle, advance)
        row = session.client.json(
            "POST",
            "files/",
            data=form,
            files={"file": (path.name, sent, "application/octet-stream")},
        )
    note = f'Uploaded file {row["id"]}: name it in a file job\'s payload as "files": [{row["id"]}].'
    show_file(session, row, note)


@api_command("list", group=files)
def list_files(session: Session) -> None:
    """List the files you may use (all pages).

    \b
    Examples:
      schedule files list
      schedule files list -o json | jq '.[] | {id, sha256}'
    """
    rows = list(session.client.pages("files/", page_size=500))

    def human() -> None:
        if not rows:
            output.say("No files. Upload one with `schedule files upload PATH`.")
            return
        output.table(
            ["ID", "NAME", "SIZE", "SHA256", "OWNER", "TEAM", f"CREATED ({output.local_zone()})"],
            [[str(row["id"]), row["name"], output.size(row["size"]), row["sha256"][:12],
              row["owner"], row["team"], output.when(row["created_at"])]
             for row in rows],
        )  # fmt: skip

    session.show(rows, human)


@api_command("delete", group=files)
@click.argument("file")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (nor does a non-terminal).")
def delete(session: Session, file: str, yes: bool) -> None:
    """Delete a file (by id or name); refused, with the jobs using it, while any does.

    \b
    Example:
      schedule files delete 3 --yes
    """
    file_id = resolve(session.client, "files", file, "file")
    if not yes and sys.stdin.isatty():
        found = session.client.get(f"files/{file_id}/")
        if not click.confirm(f"Delete file {file_id} ({found['name']})?", err=True):
            raise errors.CliError("Nothing deleted.")
    session.client.json("DELETE", f"files/{file_id}/")
    session.show({"deleted": file_id}, lambda: output.say(f"Deleted file {file_id}."))
