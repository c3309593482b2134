"""The database statements of one run of ``true``, counted on the real database: the
worker's side of a fire (fire, claim, start, live output, end, the job's figures) and
of a run asked for by hand. Pinned, so that a statement more fails here (issue 12).

Counted with BEGIN and COMMIT (Django issues them as statements on both backends).
Before issue 12: 16 by hand and 21 scheduled on SQLite; then 8 by hand, 10 scheduled
and 7 scheduled under "allow" on SQLite (PostgreSQL: 8, 11, 7); a run by hand under
"allow" 6 on SQLite, 3 on PostgreSQL, then 2 (claim and job read in one statement).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app import runs
from scheduler_app.models import Job, Run
from tests.helpers import make_job
from workers import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NODE = "celery@here"
POSTGRES = connection.vendor == "postgresql"
# The end of a run that sets off nothing but the job's figures: the run's UPDATE and the
# figures' in one statement (PostgreSQL), or in BEGIN, UPDATE, UPDATE, COMMIT (SQLite).
END = 1 if POSTGRES else 4
# claim of a job under "forbid" (the default): PostgreSQL: the claim in one statement
# (it does not take: the policy must look), then BEGIN, SELECT run + job (locking the
# job), UPDATE, COMMIT; SQLite (writes one at a time): the claim in one statement,
# while no other run of the job runs, then SELECT job.
BY_HAND = (5 if POSTGRES else 2) + END
# The policy "allow" (no limit): the claim and the read of its job in one statement
# (PostgreSQL), or UPDATE then SELECT job (SQLite).
BY_HAND_ALLOW = (1 if POSTGRES else 2) + END
# fire: SELECT job, INSERT run, UPDATE job's next fire; claim: PostgreSQL: BEGIN, lock
# the job, UPDATE, COMMIT; SQLite: one UPDATE; end as above.
SCHEDULED = 3 + (4 if POSTGRES else 1) + END
# The policy "allow" (no limit) needs no check: the INSERT is the claim.
SCHEDULED_ALLOW = 3 + END


@contextmanager
def as_worker(task: Any) -> Iterator[None]:
    """The task body runs here as a worker process runs it, under a request of its node."""
    task.push_request(hostname=NODE, retries=0)
    try:
        yield
    finally:
        task.pop_request()


def statements(call: Any) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries]


def fire_now(job: Job) -> list[str]:
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    with as_worker(tasks.fire_job):
        return statements(
            lambda: tasks.fire_job.run(job.id, slot.isoformat(), timezone.now().isoformat())
        )


def assert_succeeded_once(job: Job) -> None:
    (run,) = Run.objects.filter(job=job)
    assert (run.status, run.exit_code, run.worker) == (Run.Status.SUCCEEDED, 0, NODE)
    job.refresh_from_db()
    assert (job.total_runs, job.last_status) == (1, Run.Status.SUCCEEDED)


def test_a_run_by_hand_of_true(owner):
    job = make_job(owner, schedule={"type": "manual"})
    run = runs.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now())

    with as_worker(tasks.execute_run):
        done = statements(lambda: tasks.execute_run.run(run.id))

    assert len(done) == BY_HAND, done
    assert_succeeded_once(job)


def test_a_run_by_hand_of_a_job_that_allows_overlap(owner):
    job = make_job(
        owner, schedule={"type": "manual"}, concurrency_policy=Job.ConcurrencyPolicy.ALLOW
    )
    run = runs.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now())

    with as_worker(tasks.execute_run):
        done = statements(lambda: tasks.execute_run.run(run.id))

    assert len(done) == BY_HAND_ALLOW, done
    assert_succeeded_once(job)


def test_a_scheduled_run_of_true(owner):
    job = make_job(owner)  # concurrency_policy "forbid", the default

    done = fire_now(job)

    assert len(done) == SCHEDULED, done
    assert_succeeded_once(job)


def test_a_scheduled_run_of_a_job_that_allows_overlap_is_made_running(owner):
    job = make_job(owner, concurrency_policy=Job.ConcurrencyPolicy.ALLOW)

    done = fire_now(job)

    assert len(done) == SCHEDULED_ALLOW, done
    assert_succeeded_once(job)
