"""A worker node killed (SIGKILL) mid-run, with another node of its queue alive: the run
it held is lost within the heartbeat timeout and the sweeps, and retried on the live
node; the job's scheduled slots go on; when the node comes back under its name it kills
what its dead self left running."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

from scheduler_app.models import Run
from tests.faults.measure import Ledger, count, reap_bound, settle
from tests.helpers import create_job, manual_job, processes_running, run_now, wait_for, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
QUEUE = "faults-kill"
EVERY = timedelta(seconds=2)


def test_a_killed_worker_s_run_is_lost_and_retried_on_the_live_node(
    live, api, figures, job_tmp_path
):
    ledger = Ledger(job_tmp_path / "ledger")
    live.start_worker(name="doomed", node="w11", queues=QUEUE)
    try:
        live.wait_workers(2)
        # Attempt 1 sleeps past the kill (its orphan is "sleep 343"); the retry completes.
        long = manual_job(api, "long", ledger.command('[ "$SCHEDULER_ATTEMPT" != 1 ] || sleep 343'),
                          queue=QUEUE, max_retries=1)  # fmt: skip
        first = run_now(api, long)
        wait_runs(long["id"], 1, id=first, status=Run.Status.RUNNING, worker__startswith="w11@")
        live.start_worker(name="survivor", node="w12", queues=QUEUE)
        live.wait_workers(3)
        steady = create_job(api, name="steady", payload={"command": ledger.command()},
                            schedule="every 2 seconds", queue=QUEUE, concurrency_policy="allow",
                            max_retries=1)  # fmt: skip
        # Kill just after a slot completed, so the kill meets the long run, not a fire
        # being received (a fire whose message dies with its node before its run is
        # recorded is another window, not measured here).
        done = wait_runs(steady["id"], 2, timeout=30, status=Run.Status.SUCCEEDED)
        wait_runs(steady["id"], len(done) + 1, timeout=10, status=Run.Status.SUCCEEDED)
        live.stop("doomed", sig=signal.SIGKILL)
        started = time.monotonic()

        (lost,) = wait_runs(long["id"], 1, timeout=30, id=first, status=Run.Status.LOST)
        lost_after = time.monotonic() - started
        (retry,) = wait_runs(long["id"], 1, timeout=30, attempt=2, status=Run.Status.SUCCEEDED)
        recovered = time.monotonic() - started
        assert retry.worker.startswith("w12@") and retry.trigger == "retry"
        assert lost.error.startswith("lost: no heartbeat since ")
        assert lost_after < reap_bound(live.env), lost_after
        assert processes_running("sleep", "343")  # left by the dead node, until it is back

        # The node comes back under its name: it finds the kill order its dead self was
        # sent, and kills what the lost run left running.
        live.start_worker(name="doomed", node="w11", queues=QUEUE)
        wait_for(lambda: not processes_running("sleep", "343"), timeout=30)
        wait_runs(steady["id"], 3, timeout=30, scheduled_for__gt=retry.finished_at)
        assert api.post(f"/api/v1/jobs/{steady['id']}/pause/").status_code == 200
        settled = settle([long["id"], steady["id"]], timeout=30)
    finally:
        for name in ("doomed", "survivor"):
            if name in live.procs:
                live.stop(name)
        for proc in processes_running("sleep", "343"):
            proc.kill()

    tally = count([long["id"], steady["id"]], ledger, every={steady["id"]: EVERY})
    figures("worker SIGKILL mid-run, another node alive", **tally.numbers(),
            lost_after=f"{lost_after:.1f} s", time_to_recover=f"{recovered:.1f} s")  # fmt: skip
    assert settled
    assert (tally.lost, tally.doubled, tally.stuck) == (0, 0, 0)
    assert tally.reaped == 1
