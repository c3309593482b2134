"""``schedule export`` and ``schedule import``: jobs, templates and calendars out as
YAML/JSON, and in from our own files, a crontab, Kubernetes CronJobs or a Celery
``beat_schedule`` (GET /api/v1/export/, POST /api/v1/import/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from scheduler_app.cli import celery_beat, errors, output
from scheduler_app.cli.app import Session, api_command

IMPORT_FORMATS = ("cronfleet", "crontab", "kubernetes", "celery")


@api_command("export")
@click.option(
    "--include-secrets",
    is_flag=True,
    help="Include secret values (env), when the server allows you.",
)
@click.option(
    "--job",
    "jobs",
    multiple=True,
    metavar="JOB",
    help="Only this job (id or name; repeatable). Default: all yours.",
)
def export(session: Session, include_secrets: bool, jobs: tuple[str, ...]) -> None:
    """Write your jobs, templates and calendars as YAML (default) or JSON to stdout.

    \b
    Examples:
      schedule export > cronfleet.yaml
      schedule export -o json --job backup --job 12 > two-jobs.json
      schedule import cronfleet.yaml          # and back in
    """
    fmt = "json" if session.output == "json" else "yaml"
    params: dict[str, Any] = {"format": fmt, "job": [session.job_id(job) for job in jobs]}
    if include_secrets:
        params["include_secrets"] = "true"
    response = session.client.request("GET", "export/", params=params, headers={"Accept": "*/*"})
    text = response.text
    if fmt == "json":  # pretty, and checked to be JSON
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def detect(text: str) -> str:
    """The format of a file, from what it holds."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError:  # a crontab's `*` is a YAML alias: not YAML
        return "crontab"
    if any(isinstance(doc, dict) and doc.get("kind") == "CronJob" for doc in documents):
        return "kubernetes"
    first = documents[0] if documents else None
    if isinstance(first, dict) and "beat_schedule" in first:
        return "celery"
    if isinstance(first, dict) and "cronfleet" in first:
        return "cronfleet"
    return "crontab"


def read_source(source: str, fmt: str) -> tuple[str, str, dict[str, str]]:
    """(format, the text to send, {entry: why refused here}) for a file, ``-`` (stdin),
    a Python file, or with --format celery a module path: those imported here."""
    path = Path(source)
    python_file = source.endswith(".py") and fmt in ("celery", "auto")
    module = python_file or (fmt == "celery" and not path.is_file())
    if module and celery_beat.looks_like_module(source):
        return ("celery", *beat_schedule_dump(source))
    if source != "-" and not path.is_file():
        raise click.BadParameter(f"no such file: {source}", param_hint="FILE")
    try:
        text = sys.stdin.read() if source == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.CliError(f"Cannot read {source}: {exc}.") from exc
    return (detect(text) if fmt == "auto" else fmt), text, {}


def beat_schedule_dump(spec: str) -> tuple[str, dict[str, str]]:
    try:
        schedule, zone = celery_beat.load(spec)
    except celery_beat.Unsupported as exc:
        raise errors.CliError(str(exc)) from exc
    except Exception as exc:  # the user's module failed to import: say how
        raise errors.CliError(f"Cannot import {spec}: {type(exc).__name__}: {exc}") from exc
    dump, refused = celery_beat.convert(schedule, zone)
    return json.dumps(dump), refused


def with_local_refusals(answer: dict[str, Any], refused: dict[str, str]) -> dict[str, Any]:
    """The server's answer, with the entries refused here (before sending) as items."""
    items = [
        {
            "line": None,
            "source": name,
            "name": name,
            "action": "refused",
            "schedule": None,
            "next_runs": [],
            "errors": {"schedule": [reason]},
            "warnings": [],
        }
        for name, reason in refused.items()
    ]
    summary = {**answer["summary"], "refused": answer["summary"].get("refused", 0) + len(items)}
    return {**answer, "summary": summary, "items": [*answer["items"], *items]}


def show_plan(answer: dict[str, Any], console: Console) -> None:
    rows = []
    for item in answer["items"]:
        problems = [
            *errors.field_lines(item.get("errors") or {}),
            *(f"warning: {w}" for w in item.get("warnings") or []),
        ]
        next_runs = item.get("next_runs") or []
        rows.append(
            [
                "-" if item.get("line") is None else str(item["line"]),
                item.get("name") or "-",
                output.status(item["action"]),
                item.get("schedule") or "-",
                output.when(next_runs[0]) if next_runs else "-",
                "\n".join(problems) or "-",
            ]
        )
    output.table(
        ["LINE", "NAME", "ACTION", "SCHEDULE", f"NEXT RUN ({output.local_zone()})", "ERRORS"],
        rows,
        console=console,
    )
    output.say(summary_text(answer["summary"]))


@api_command("import")
@click.argument("source", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto", *IMPORT_FORMATS)),
    default="auto",
    show_default=True,
    help="What FILE holds (auto: guessed from it).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option(
    "--on-conflict",
    type=click.Choice(("update", "skip")),
    default="update",
    show_default=True,
    help="What to do with a job of the same name.",
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="For lines that name none (crontab, CronJob).",
)
@click.option("--queue", default="default", show_default=True, metavar="QUEUE")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
def import_jobs(
    session: Session,
    source: str,
    fmt: str,
    dry_run: bool,
    on_conflict: str,
    timezone: str,
    queue: str,
    yes: bool,
) -> None:
    """Import jobs: our export, a crontab, Kubernetes CronJobs or a Celery beat_schedule.

    First shows, line by line, what would be created, updated and refused; then, on a
    terminal, asks before applying. Exits 1 when anything was refused.

    \b
    Examples:
      schedule import cronfleet.yaml --dry-run
      crontab -l | schedule import - --format crontab --timezone Europe/Paris
      schedule import cronjobs.yaml --on-conflict update --yes
      schedule import --format celery proj.celery:app      # imported here, locally
      schedule import beat-schedule.json --format celery
    """
    fmt, content, refused_here = read_source(source, fmt)
    body = {
        "format": fmt,
        "content": content,
        "dry_run": True,
        "on_conflict": on_conflict,
        "timezone": timezone,
        "queue": queue,
    }
    plan = with_local_refusals(session.client.post("import/", body), refused_here)
    if dry_run:
        session.show(plan, lambda: show_plan(plan, output.out))
        sys.exit(exit_code(plan))
    asking = not yes and sys.stdin.isatty()
    if not session.for_machines or asking:
        show_plan(plan, output.err if session.for_machines else output.out)
    if not plan["summary"].get("create") and not plan["summary"].get("update"):
        session.show(plan, lambda: output.say("Nothing to import."))
        sys.exit(exit_code(plan))
    if asking and not click.confirm("Apply these changes?", err=True):
        raise errors.CliError("Nothing imported.")
    done = with_local_refusals(
        session.client.post("import/", {**body, "dry_run": False}), refused_here
    )
    session.show(done, lambda: output.say(f"Imported: {summary_text(done['summary'])}."))
    sys.exit(exit_code(done))


def exit_code(answer: dict[str, Any]) -> int:
    return errors.FAILURE if answer["summary"].get("refused") else errors.OK


def summary_text(summary: dict[str, int]) -> str:
    keys = ("create", "update", "unchanged", "refused")
    return ", ".join(f"{key}: {summary.get(key, 0)}" for key in keys)
