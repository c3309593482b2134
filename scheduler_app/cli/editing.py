"""``schedule edit``: the job's editable fields as YAML in $VISUAL/$EDITOR, then a PATCH
of what changed. :func:`edit_in_editor` does the same for any row (a catalogue entry)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from scheduler_app.cli import errors, output
from scheduler_app.cli.app import Session, api_command
from scheduler_app.cli.jobs import report_job

# What the API reports but a PATCH does not take (the job serializer's read-only fields).
READ_ONLY = {
    "id",
    "status",
    "owner",
    "schedule_description",
    "next_run_at",
    "last_run_at",
    "last_status",
    "total_runs",
    "failed_runs",
    "paused_reason",
    "created_at",
    "updated_at",
}
HEADER = """\
# {noun} {id} ({name}). Save and quit to apply; leave it unchanged (or empty it) to change
# nothing. Only the fields you change are sent. Lines starting with # are ignored.
"""


def to_yaml(fields: dict[str, Any]) -> str:
    return yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=100)


def run_editor(text: str) -> str:
    """The text after the user edited it in their editor."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="schedule-edit-") as folder:
        path = Path(folder) / "job.yaml"
        path.write_text(text)
        try:
            finished = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise errors.CliError(
                f"Cannot start the editor {editor!r} ($VISUAL, $EDITOR): {exc.strerror}."
            ) from exc
        if finished.returncode != 0:
            raise errors.CliError(
                f"The editor {editor!r} exited with {finished.returncode}: nothing changed."
            )
        return path.read_text()


def changes(original: dict[str, Any], text: str) -> dict[str, Any]:
    """The fields the edited YAML changes; a ValueError when it is not a mapping."""
    edited = yaml.safe_load(text)
    if edited is None:
        return {}
    if not isinstance(edited, dict):
        raise ValueError("the file must hold the job's fields as `name: value` lines.")
    unknown = sorted(set(edited) - set(original))
    if unknown:
        raise ValueError(f"unknown or read-only fields: {', '.join(map(str, unknown))}.")
    return {key: value for key, value in edited.items() if original.get(key) != value}


def with_problems(text: str, problems: list[str]) -> str:
    """The user's text again, the errors above it as comments (replacing earlier ones)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# ! "))
    notes = "".join(f"# ! {line}\n" for line in problems)
    return notes + body + "\n"


def offer_again(problems: list[str]) -> bool:
    for line in problems:
        output.say(line)
    if not sys.stdin.isatty():
        return False
    return click.confirm("Open the editor again (your text is kept)?", default=True, err=True)


def edit_in_editor(
    session: Session,
    path: str,
    read_only: set[str],
    saved: Callable[[dict[str, Any], list[str]], None],
    noun: str = "Job",
) -> None:
    """Open the row at ``path`` (its fields but ``read_only``) in the editor, PATCH what
    changed, and tell ``saved`` the answer and the fields sent. A refusal is shown and
    the editor offered again, the user's text kept."""
    current = session.client.get(path)
    original = {key: value for key, value in current.items() if key not in read_only}
    first = HEADER.format(noun=noun, **current) + to_yaml(original)
    text = first
    while True:
        text = run_editor(text)
        if text == first:
            output.say("No changes.")
            return
        try:
            patch = changes(original, text)
        except (ValueError, yaml.YAMLError) as exc:
            problems = [f"not valid: {exc}"]
        else:
            if not patch:
                output.say("No changes.")
                return
            try:
                answer = session.client.json("PATCH", path, json=patch)
            except errors.CliError as exc:
                if exc.exit_code != errors.FAILURE:  # gone, or refused: editing cannot help
                    raise
                problems = exc.message.splitlines()
            else:
                saved(answer, list(patch))
                return
        if not offer_again(problems):
            raise errors.CliError("Nothing saved.")
        text = with_problems(text, problems)


@api_command("edit")
@click.argument("job")
def edit(session: Session, job: str) -> None:
    """Edit a job's fields as YAML in $VISUAL or $EDITOR, then save them.

    \b
    Examples:
      schedule edit backup
      EDITOR=nano schedule edit 12
    """
    edit_in_editor(
        session,
        f"jobs/{session.job_id(job)}/",
        READ_ONLY,
        lambda saved, fields: report_job(session, saved, f"Saved {', '.join(fields)} of"),
    )
