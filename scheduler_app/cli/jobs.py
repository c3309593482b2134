"""Commands on jobs: create, list, show, enable, disable, delete, next, preview."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from scheduler_app.cli import errors, output
from scheduler_app.cli.app import Session, api_command

JOB_STATUSES = ("active", "paused", "completed")
# The server judges the kind (and says which it knows): a newer server's kinds work here too.
KIND_HELP = "command, commands, script, python, pytest, http, celery, ..."
SHOW_FIELDS = (
    "id",
    "name",
    "description",
    "tags",
    "status",
    "kind",
    "payload",
    "schedule",
    "schedule_description",
    "timezone",
    "queue",
    "timeout",
    "max_retries",
    "next_run_at",
    "last_run_at",
    "last_status",
    "total_runs",
    "failed_runs",
    "owner",
    "team",
    "created_at",
    "updated_at",
)


def show_job(session: Session, job: dict[str, Any]) -> None:
    def human() -> None:
        times = {key: output.when(job.get(key)) for key in
                 ("next_run_at", "last_run_at", "created_at", "updated_at")}  # fmt: skip
        output.fields({**job, **times}, SHOW_FIELDS)

    session.show(job, human)


def report_job(session: Session, job: dict[str, Any], done: str) -> None:
    """One line for people (``Created job 3 (ping): ...``); the job for scripts."""
    session.show(job, lambda: output.say(
        f"{done} job {job['id']} ({job['name']}): {job['schedule_description']}, "
        f"{job['status']}; next run: {output.when(job['next_run_at'])} ({output.local_zone()})."
    ))  # fmt: skip


def parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None


@api_command("create")
@click.argument("name")
@click.option("--command", "command_line", metavar="CMD", help="A shell command (kind command).")
@click.option(
    "--schedule",
    metavar="WHEN",
    help='When: "*/5 * * * *", "every 10 minutes", "daily at 10:30", "manual", or a JSON object.',
)
@click.option("--kind", metavar="KIND", help=f"What runs: {KIND_HELP} (default: command).")
@click.option(
    "--payload", metavar="JSON", help='The kind\'s payload, e.g. \'{"code": "print(1)"}\'.'
)
@click.option("--timezone", metavar="ZONE", help="IANA name; cron and times read in it (UTC).")
@click.option("--queue", metavar="QUEUE", help="The worker group that runs it (default).")
@click.option("--timeout", type=int, metavar="SECONDS", help="Stop a run after this long.")
@click.option("--retries", type=int, metavar="N", help="Retries after a failed run.")
@click.option("--description", metavar="TEXT")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--disabled", is_flag=True, help="Create it paused.")
@click.option(
    "--from-template",
    "template",
    metavar="TEMPLATE",
    help="A template (id or name) whose defaults the other options override.",
)
def create(
    session: Session, name: str, command_line: str | None, template: str | None, **options: Any
) -> None:
    """Create a job.

    \b
    Examples:
      schedule create backup --command "tar czf /tmp/b.tgz /srv" --schedule "daily at 02:30"
      schedule create ping --kind http --payload '{"url": "https://example.com"}' \\
          --schedule "every 5 minutes" --timeout 30 --retries 2
      schedule create nightly --from-template backup-template --schedule "@daily"
    """
    body = job_body(name, command_line, **options)
    if template is None and "schedule" not in body:
        raise click.UsageError("--schedule is required (or --from-template).")
    if template is None and "payload" not in body:
        raise click.UsageError("--command or --payload is required (or --from-template).")
    if template is None:
        job = session.client.post("jobs/", body)
    else:
        job = session.client.post(f"templates/{session.template_id(template)}/instantiate/", body)
    report_job(session, job, "Created")


def job_body(name: str, command_line: str | None, **options: Any) -> dict[str, Any]:
    """The fields given on the command line, as the API spells them."""
    body: dict[str, Any] = {"name": name}
    if command_line is not None:
        body["kind"] = "command"
        body["payload"] = {"command": command_line}
    if options["payload"] is not None:
        body["payload"] = parse_json(options["payload"], "--payload")
    if options["kind"]:
        body["kind"] = options["kind"]
    schedule = options["schedule"]
    if schedule is not None:
        body["schedule"] = (
            parse_json(schedule, "--schedule") if schedule.lstrip().startswith("{") else schedule
        )
    renamed = {
        "timezone": "timezone",
        "queue": "queue",
        "timeout": "timeout",
        "retries": "max_retries",
        "description": "description",
    }
    body.update({api: options[opt] for opt, api in renamed.items() if options[opt] is not None})
    if options["tags"]:
        body["tags"] = list(options["tags"])
    if options["disabled"]:
        body["enabled"] = False
    return body


@api_command("list")
@click.option("--status", type=click.Choice(JOB_STATUSES))
@click.option("--search", metavar="TEXT", help="In the name or description.")
@click.option("--tag", metavar="TAG", help="Jobs with this tag (filtered here, not by the API).")
@click.option("--queue", metavar="QUEUE")
@click.option("--kind", metavar="KIND", help=KIND_HELP)
def list_jobs(
    session: Session,
    status: str | None,
    search: str | None,
    tag: str | None,
    queue: str | None,
    kind: str | None,
) -> None:
    """List your jobs (all pages).

    \b
    Examples:
      schedule list
      schedule list --status paused --search backup
      schedule list -o json | jq '.[].name'
    """
    jobs = [
        job
        for job in session.client.pages(
            "jobs/", status=status, search=search, queue=queue, kind=kind, page_size=500
        )
        if tag is None or tag in (job.get("tags") or [])
    ]

    def human() -> None:
        if not jobs:
            output.say(
                "No jobs. Make one with `schedule create NAME --command ... --schedule ...`."
            )
            return
        output.table(
            [
                "ID",
                "NAME",
                "KIND",
                "SCHEDULE",
                "STATUS",
                "LAST",
                f"NEXT RUN ({output.local_zone()})",
            ],
            [
                [
                    str(job["id"]),
                    job["name"],
                    job["kind"],
                    job["schedule_description"],
                    output.status(job["status"]),
                    output.status(job["last_status"]),
                    output.when(job["next_run_at"]),
                ]
                for job in jobs
            ],
        )

    session.show(jobs, human)


@api_command("show")
@click.argument("job")
def show(session: Session, job: str) -> None:
    """Show a job (by id or name).

    \b
    Example:
      schedule show backup
    """
    show_job(session, session.client.get(f"jobs/{session.job_id(job)}/"))


@api_command("enable")
@click.argument("job")
def enable(session: Session, job: str) -> None:
    """Resume a job's schedule.

    \b
    Example:
      schedule enable backup
    """
    report_job(session, session.client.post(f"jobs/{session.job_id(job)}/resume/"), "Enabled")


@api_command("disable")
@click.argument("job")
def disable(session: Session, job: str) -> None:
    """Pause a job's schedule (a running run goes on; `schedule cancel RUN` stops it).

    \b
    Example:
      schedule disable backup
    """
    report_job(session, session.client.post(f"jobs/{session.job_id(job)}/pause/"), "Disabled")


@api_command("delete")
@click.argument("job")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (nor does a non-terminal).")
def delete(session: Session, job: str, yes: bool) -> None:
    """Delete a job and its runs.

    \b
    Example:
      schedule delete backup --yes
    """
    job_id = session.job_id(job)
    if not yes and sys.stdin.isatty():
        found = session.client.get(f"jobs/{job_id}/")
        if not click.confirm(f"Delete job {job_id} ({found['name']}) and its runs?", err=True):
            raise errors.CliError("Nothing deleted.")
    session.client.json("DELETE", f"jobs/{job_id}/")
    session.show({"deleted": job_id}, lambda: output.say(f"Deleted job {job_id}."))


@api_command("next")
@click.argument("job", required=False)
@click.option("-n", "--count", type=click.IntRange(1, 100), default=10, show_default=True)
def next_runs(session: Session, job: str | None, count: int) -> None:
    """The next fire times of one job, or of all your jobs.

    \b
    Examples:
      schedule next
      schedule next backup --count 3
    """
    if job is None:
        answer = session.client.get("next-runs/", count=count)
        rows = [
            [output.when(item["at"]), str(item["job"]), item["job_name"]]
            for item in answer["next_runs"]
        ]
        columns = [f"AT ({output.local_zone()})", "JOB", "NAME"]
    else:
        answer = session.client.get(f"jobs/{session.job_id(job)}/next-runs/", count=count)
        rows = [[output.when(at), at] for at in answer["next_runs"]]
        columns = [f"AT ({output.local_zone()})", "AT (ISO, UTC)"]

    def human() -> None:
        if rows:
            output.table(columns, rows)
        else:
            output.say("Nothing scheduled.")
        for warning in answer.get("warnings", []):
            output.say(f"warning: {warning}")

    session.show(answer, human)


@api_command("preview")
@click.argument("schedule")
@click.option("--timezone", default="UTC", show_default=True, metavar="ZONE")
@click.option("-n", "--count", type=click.IntRange(1, 100), default=5, show_default=True)
def preview(session: Session, schedule: str, timezone: str, count: int) -> None:
    """Show when a schedule would fire, without making a job.

    \b
    Examples:
      schedule preview "every 15 minutes"
      schedule preview "0 9 * * 1-5" --timezone Europe/Paris --count 10
    """
    spec = parse_json(schedule, "SCHEDULE") if schedule.lstrip().startswith("{") else schedule
    answer = session.client.post(
        "schedules/preview/", {"schedule": spec, "timezone": timezone, "count": count}
    )

    def human() -> None:
        output.out.print(output.plain(answer["description"]))
        output.table(
            ["UTC", f"LOCAL ({answer['timezone']})"],
            zip(answer["next_runs"], answer["next_runs_local"], strict=False),
        )
        for warning in answer.get("warnings", []):
            output.say(f"warning: {warning}")

    session.show(answer, human)
