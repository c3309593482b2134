"""A worker told to stop (SIGTERM, as a deploy does) while it runs a short and a long
job: the short one ends within SCHEDULER_SHUTDOWN_GRACE, the long one is recorded lost
when the grace is over, its processes killed, and retried on a node that stays."""

from __future__ import annotations

import signal
import time

import pytest

from scheduler_app.models import Run
from tests.faults.measure import Ledger, count, settle
from tests.helpers import manual_job, processes_running, run_now, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
QUEUE = "deploy"


def test_a_warm_shutdown_lets_short_jobs_end_and_records_long_ones_lost(
    live, api, figures, job_tmp_path
):
    ledger = Ledger(job_tmp_path / "ledger")
    live.start_worker(name="deploy", node="w7", queues=QUEUE, SCHEDULER_SHUTDOWN_GRACE="3")
    try:
        live.wait_workers(2)
        short = manual_job(api, "short", ledger.command("sleep 1; echo ok"), queue=QUEUE)
        long = manual_job(api, "long", ledger.command('[ "$SCHEDULER_ATTEMPT" != 1 ] || sleep 361'),
                          queue=QUEUE, max_retries=1)  # fmt: skip
        short_run, long_run = run_now(api, short), run_now(api, long)
        wait_runs(short["id"], 1, id=short_run, status=Run.Status.RUNNING)
        wait_runs(long["id"], 1, id=long_run, status=Run.Status.RUNNING)
        live.start_worker(name="stays", node="w8", queues=QUEUE)
        live.wait_workers(3)

        started = time.monotonic()
        worker = live.procs.pop("deploy")
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        took = time.monotonic() - started

        assert Run.objects.get(id=short_run).status == Run.Status.SUCCEEDED
        lost = Run.objects.get(id=long_run)
        assert lost.status == Run.Status.LOST and lost.finished_at
        assert "shut down; the run was still going after 3 s" in lost.error
        assert 3 <= took < 20
        assert not processes_running("sleep", "361")
        (retry,) = wait_runs(long["id"], 1, timeout=30, attempt=2, status=Run.Status.SUCCEEDED)
        recovered = time.monotonic() - started
        assert retry.worker.startswith("w8@")
        settled = settle([short["id"], long["id"]])
    finally:
        for name in ("deploy", "stays"):
            if name in live.procs:
                live.stop(name)

    tally = count([short["id"], long["id"]], ledger)
    figures("worker SIGTERM with a short and a long job (grace 3 s)",
            **tally.numbers("runs_started"), shutdown_took=f"{took:.1f} s",
            time_to_recover=f"{recovered:.1f} s")  # fmt: skip
    assert settled
    assert (tally.slots, tally.completed, tally.reaped) == (2, 2, 1)
    assert (tally.lost, tally.doubled, tally.stuck) == (0, 0, 0)
