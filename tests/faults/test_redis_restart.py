"""Redis restarted without persistence while messages wait in it (the worker stopped):
the queued runs' messages and the fires sent meanwhile are gone with it. Every queued
run still runs, once (the requeue sweep sends it again SCHEDULER_REQUEUE_AFTER after it
was due), and every slot of the scheduled job runs (beat rebuilds its entries from the
database, from the last fire time a worker recorded)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from rest_framework.authtoken.models import Token

from scheduler_app import runs
from scheduler_app.embedded_redis import EmbeddedRedis
from scheduler_app.models import Job, Run
from tests.faults.measure import Ledger, count, seconds, settle, within
from tests.faults.own import Http
from tests.helpers import manual_job, wait_for, wait_runs

pytestmark = [pytest.mark.stack, pytest.mark.faults]
EVERY = timedelta(seconds=2)
QUEUED = 3


def waiting_messages(url: str, task: str | None = None) -> int:
    """Messages in the Redis lists of the queue ``default`` (one list per priority),
    only those of ``task`` when it is given."""
    client = redis.Redis.from_url(url)
    try:
        if task is None:
            return sum(client.llen(key) for key in client.scan_iter("default*"))
        bodies = [
            body for key in client.scan_iter("default*") for body in client.lrange(key, 0, -1)
        ]
        return sum(json.loads(body)["headers"]["task"] == task for body in bodies)
    finally:
        client.close()


def sweeps_after_restart(own) -> int:
    """The sweeps (reaper, requeue) beat sent since Redis answered again."""
    log = own.live.log("own-beat").split("Redis answers", 1)
    return log[-1].count("Sending due task reap-lost-runs") if len(log) == 2 else 0


def succeeded(run_ids: list[int]) -> int:
    return Run.objects.filter(id__in=run_ids, status=Run.Status.SUCCEEDED).count()


def test_queued_runs_and_due_slots_survive_a_redis_restart_without_persistence(
    own_stack, api, owner, figures, tmp_path, job_tmp_path
):
    own, ledger = own_stack, Ledger(job_tmp_path / "ledger")
    http = Http(own.start_web(), Token.objects.get(user=owner).key)
    own.start_beat()
    own.start_worker("w13")
    own.wait_workers(1)
    steady = http.create_job(name="steady", payload={"command": ledger.command()},
                             schedule="every 2 seconds", concurrency_policy="allow")  # fmt: skip
    manual = http.create_job(name="queued", payload={"command": ledger.command("echo once")},
                             schedule="manual", concurrency_policy="allow")  # fmt: skip
    wait_runs(steady["id"], 2, timeout=30, status=Run.Status.SUCCEEDED)

    own.live.stop("own-worker")  # warm: what it had reserved goes back to Redis
    queued = [http.run_now(manual) for _ in range(QUEUED)]
    wait_for(lambda: waiting_messages(own.redis_url) >= QUEUED + 2, timeout=15)  # and 2 fires
    waited = waiting_messages(own.redis_url)
    own.redis.stop()
    own.redis = EmbeddedRedis.start(tmp_path / "redis", own.redis.port, persist=False)
    # The queued runs' messages are gone (beat, rebuilding at once, may already have sent
    # the steady job's next fire into the new Redis: only execute_run is counted).
    assert waiting_messages(own.redis_url, task="workers.execute_run") == 0
    restarted_at = timezone.now()
    own.start_worker("w13")

    recovered = within(lambda: succeeded(queued) == QUEUED, timeout=25)
    since = Run.objects.filter(job_id=steady["id"], scheduled_for__gt=restarted_at)
    within(lambda: since.filter(status=Run.Status.SUCCEEDED).count() >= 2, timeout=15)
    assert http.post(f"/api/v1/jobs/{steady['id']}/pause/")[0] == 200
    settled = settle([steady["id"], manual["id"]], timeout=5)

    tally = count([steady["id"], manual["id"]], ledger, every={steady["id"]: EVERY})
    figures("Redis restarted without persistence, worker stopped", **tally.numbers(),
            messages_lost=waited, sweeps_after_restart=sweeps_after_restart(own),
            time_to_recover=seconds(recovered))  # fmt: skip
    assert recovered is not None and settled
    assert (tally.lost, tally.doubled, tally.stuck) == (0, 0, 0)
    assert Run.objects.filter(job_id=manual["id"]).count() == QUEUED  # each ran once


def test_a_queued_run_whose_message_was_lost_still_runs_once(live, api, figures, job_tmp_path):
    """The requeue sweep alone, on the session's stack: a queued run whose message never
    reached a worker (as when Redis lost it) is sent again, and runs once."""
    ledger = Ledger(job_tmp_path / "ledger")
    job = manual_job(api, "lost-message", ledger.command("echo once"))
    # Queued but never sent: no message for it in any Redis.
    run = runs.create(job=Job.objects.get(id=job["id"]), trigger="manual",
                      scheduled_for=timezone.now())  # fmt: skip

    recovered = within(lambda: succeeded([run.id]) == 1, timeout=40)
    settled = settle([job["id"]], timeout=10)

    tally = count([job["id"]], ledger)
    figures("a queued run's message lost", **tally.numbers("runs_started"),
            time_to_recover=seconds(recovered))  # fmt: skip
    assert recovered is not None and settled
    assert Run.objects.get(id=run.id).output == "once\n"
    assert (tally.slots, tally.completed, tally.lost, tally.doubled, tally.stuck) == (1, 1, 0, 0, 0)
