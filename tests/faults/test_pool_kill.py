"""A job's pool process killed (SIGKILL, as the out-of-memory killer would): the run is
lost within the heartbeat timeout and the sweeps, retried, and the processes it left
behind are killed by its node, which is still alive. (The job cannot kill it itself: it
runs as another user, SCHEDULER_RUN_AS; the test does, as the kernel would.)"""

from __future__ import annotations

import time

import pytest

from scheduler_app.models import Run
from tests.faults.measure import Ledger, count, reap_bound, settle
from tests.helpers import manual_job, processes_running, run_now, wait_for, wait_runs
from workers.executors import containment

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def test_a_job_that_kills_its_own_pool_process_is_lost_retried_and_cleaned_up(
    live, api, figures, job_tmp_path
):
    ledger = Ledger(job_tmp_path / "ledger")
    # Attempt 1 leaves a process behind, and its pool process is killed; attempt 2 is fine.
    self_killing = ledger.command(
        '{ [ "$SCHEDULER_ATTEMPT" != 1 ] || { sleep 347 & wait; }; } && echo done'
    )
    job = manual_job(api, "self-killing", self_killing, max_retries=1)
    first = run_now(api, job)
    (sleeper,) = wait_for(lambda: processes_running("sleep", "347"))
    # The pool process: the first celery process above sleep (its shell, and the launcher
    # when the run has a cgroup, are between).
    pool = next(up for up in sleeper.parents() if "celery" in " ".join(up.cmdline()))
    assert sleeper.parents().index(pool) <= 2
    pool.kill()
    started = time.monotonic()

    lost = wait_runs(job["id"], 1, timeout=30, id=first, status=Run.Status.LOST)[0]
    lost_after = time.monotonic() - started
    retry = wait_runs(job["id"], 1, timeout=30, attempt=2, status=Run.Status.SUCCEEDED)[0]
    recovered = time.monotonic() - started

    assert lost.error.startswith("lost: no heartbeat since ") and lost.finished_at
    assert lost_after < reap_bound(live.env), lost_after
    assert (retry.output, retry.trigger) == ("done\n", "retry")
    # The node, still alive, kills what the dead pool process left running.
    wait_for(lambda: not processes_running("sleep", "347"), timeout=15)
    leftovers_killed = time.monotonic() - started
    if (base := containment.cgroup_base()) is not None:  # and the run's cgroup is removed
        wait_for(lambda: not list(base.glob(f"cronfleet-run-{first}-*")), timeout=15)
    settled = settle([job["id"]])
    tally = count([job["id"]], ledger)
    figures("pool process SIGKILL by its job", **tally.numbers("runs_started"),
            lost_after=f"{lost_after:.1f} s", time_to_recover=f"{recovered:.1f} s",
            leftovers_killed_after=f"{leftovers_killed:.1f} s")  # fmt: skip
    assert settled
    assert (tally.slots, tally.completed, tally.reaped) == (1, 1, 1)
    assert (tally.lost, tally.doubled, tally.stuck) == (0, 0, 0)
