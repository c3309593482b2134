"""Commands on runs: run (and wait), history, logs (and follow), cancel."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from scheduler_app.cli import errors, output
from scheduler_app.cli.app import Session, api_command
from scheduler_app.cli.client import Client

POLL_SECONDS = 0.5
RUNS_PAGE = 100  # runs a request; more come by cursor, page after page
RUN_FIELDS = (
    "id",
    "job",
    "job_name",
    "trigger",
    "attempt",
    "status",
    "scheduled_for",
    "queued_at",
    "started_at",
    "finished_at",
    "duration",
    "exit_code",
    "worker",
    "error",
    "result",
    "parent",
)


def follow_log(client: Client, run_id: int, echo: bool, deadline: float | None = None) -> bool:
    """Read the run's log from the start until the run ends, writing it to stdout as it
    comes when ``echo``; True when it ended, False when ``deadline`` came first."""
    offset = 0
    while True:
        answer = client.get(f"runs/{run_id}/log/", offset=offset)
        if answer["offset"] < offset:  # the stored output was cut: it starts again
            output.say(f"[the log of run {run_id} was trimmed; showing it again from its start]")
        if echo and answer["output"]:
            sys.stdout.write(answer["output"])
            sys.stdout.flush()
        offset = answer["next_offset"]
        if answer["finished"]:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def run_exit_code(run: dict[str, Any]) -> int:
    """The run's own exit code when it has one a shell can carry, 0 for a success
    without one, else 1."""
    code = run.get("exit_code")
    if run["status"] == "succeeded":
        return 0 if code is None else code
    if isinstance(code, int) and 0 < code < 256:
        return code
    return errors.FAILURE


def show_run(session: Session, run: dict[str, Any], note: str | None = None) -> None:
    def human() -> None:
        times = {
            key: output.when(run.get(key))
            for key in ("scheduled_for", "queued_at", "started_at", "finished_at")
        }
        output.fields({**run, **times, "duration": output.seconds(run.get("duration"))}, RUN_FIELDS)
        if note:
            output.say(note)

    session.show(run, human)


@api_command("run")
@click.argument("job")
@click.option("--wait", is_flag=True, help="Stream its output; exit with the run's exit code.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --wait: stop waiting after this long (exit 1).",
)
def run(session: Session, job: str, wait: bool, timeout: float | None) -> None:
    """Run a job now.

    \b
    Examples:
      schedule run backup
      schedule run backup --wait              # output live; exit status of the run
      schedule run backup --wait --timeout 60
    """
    started = session.client.post(f"jobs/{session.job_id(job)}/run/")
    if not wait:
        note = (
            f"Run {started['id']} of job {started['job']} ({started['job_name']}) is "
            f"{started['status']}: `schedule logs {started['id']} --follow` shows it."
        )
        session.show(started, lambda: output.say(note))
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    if not session.for_machines:
        output.say(f"Run {started['id']} of job {started['job']} ({started['job_name']}):")
    try:
        ended = follow_log(
            session.client, started["id"], echo=not session.for_machines, deadline=deadline
        )
    except KeyboardInterrupt:
        output.say(
            f"\nStopped waiting; run {started['id']} goes on (`schedule cancel "
            f"{started['id']}` stops it)."
        )
        raise
    final = session.client.get(f"runs/{started['id']}/")
    if not ended:
        session.show(final, lambda: None)
        raise errors.CliError(
            f"Stopped waiting after {timeout:g} s: run {final['id']} is "
            f"{final['status']}. `schedule logs {final['id']} --follow` "
            "goes on following it."
        )
    session.show(final, lambda: report_end(final))
    sys.exit(run_exit_code(final))


def report_end(run: dict[str, Any]) -> None:
    """``failed run 2 in 2.0 s: exited with code 3`` on stderr."""
    code = "" if run["exit_code"] is None else f", exit code {run['exit_code']}"
    detail = f": {output.escape_controls(run['error'])}" if run.get("error") else code
    text = f" run {run['id']} in {output.seconds(run['duration'])}{detail}"
    output.err.print(output.status(run["status"]).append(text, style=""))


@api_command("history")
@click.argument("job")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
def history(session: Session, job: str, limit: int) -> None:
    """A job's runs, newest first.

    \b
    Examples:
      schedule history backup
      schedule history 12 --limit 200 -o json
    """
    job_id = session.job_id(job)
    runs = list(
        session.client.pages(f"jobs/{job_id}/runs/", limit=limit, page_size=min(limit, RUNS_PAGE))
    )

    def human() -> None:
        if not runs:
            output.say(f"Job {job_id} has not run yet: `schedule run {job_id}` runs it now.")
            return
        output.table(
            [
                "RUN",
                "TRIGGER",
                "STATUS",
                f"SCHEDULED ({output.local_zone()})",
                "STARTED",
                "DURATION",
                "EXIT",
                "WORKER",
            ],
            [
                [
                    str(run["id"]),
                    run["trigger"],
                    output.status(run["status"]),
                    output.when(run["scheduled_for"]),
                    output.when(run["started_at"]),
                    output.seconds(run["duration"]),
                    "-" if run["exit_code"] is None else str(run["exit_code"]),
                    run["worker"] or "-",
                ]
                for run in runs
            ],
        )

    session.show(runs, human)


@api_command("logs")
@click.argument("run_id", metavar="RUN", type=click.IntRange(min=1))
@click.option("-f", "--follow", is_flag=True, help="Keep reading until the run ends.")
def logs(session: Session, run_id: int, follow: bool) -> None:
    """A run's output (RUN: its id, from `schedule history`).

    \b
    Examples:
      schedule logs 812
      schedule logs 812 --follow
    """
    if session.for_machines:
        if follow:
            follow_log(session.client, run_id, echo=False)
        output.machine(session.client.get(f"runs/{run_id}/log/"), session.output)
    elif follow:
        follow_log(session.client, run_id, echo=True)
    else:
        sys.stdout.write(session.client.get(f"runs/{run_id}/log/")["output"])


@api_command("cancel")
@click.argument("run_id", metavar="RUN", type=click.IntRange(min=1))
def cancel(session: Session, run_id: int) -> None:
    """Stop a queued or running run.

    \b
    Example:
      schedule cancel 812
    """
    answer = session.client.post(f"runs/{run_id}/cancel/")
    show_run(session, answer, f"Run {run_id} is {answer['status']}.")
