"""A run's claim and end by their shortest path (issue 12): a run no policy judges is
claimed by one conditional UPDATE and read with its job; an end that sets off nothing
but the job's figures is written with them at once. Same rows as the long path."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app import runs, services
from scheduler_app.models import Job, JobDependency, Run
from tests.helpers import make_job

pytestmark = pytest.mark.django_db(transaction=True)

NODE = "celery@here"
ALLOW = Job.ConcurrencyPolicy.ALLOW
POSTGRES = connection.vendor == "postgresql"


def queued(job: Job) -> Run:
    run = runs.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now())
    assert run is not None
    return run


def statements(call: Any) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        value = call()
    return value, [query["sql"] for query in captured.captured_queries]


def fields_of(instance: Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_a_run_of_a_job_that_admits_any_is_claimed_and_read_with_its_job_at_once(owner):
    job = make_job(owner, concurrency_policy=ALLOW, notify_emails=["a@example.com"])
    run = queued(job)

    claimed, done = statements(lambda: services.claim_run(run.id, NODE))

    # PostgreSQL: WITH claimed AS (UPDATE ... RETURNING ...) SELECT ... the job.
    expected = ["WITH"] if POSTGRES else ["UPDATE", "SELECT"]
    assert [sql.split()[0] for sql in done] == expected, done
    assert fields_of(claimed) == fields_of(Run.objects.get(id=run.id))
    assert fields_of(claimed.job) == fields_of(Job.objects.get(id=job.id))
    assert (claimed.status, claimed.worker, claimed.job.notify_emails) == (
        Run.Status.RUNNING, NODE, ["a@example.com"],
    )  # fmt: skip
    assert claimed.job_has_dependents is False


def test_the_claim_says_whether_a_job_depends_on_the_run(owner):
    job = make_job(owner, concurrency_policy=ALLOW)
    JobDependency.objects.create(job=make_job(owner, name="after"), upstream=job)

    assert services.claim_run(queued(job).id, NODE).job_has_dependents is True


def test_a_message_delivered_twice_claims_once(owner):
    run = queued(make_job(owner, concurrency_policy=ALLOW))

    first = services.claim_run(run.id, NODE)
    again = services.claim_run(run.id, "celery@other")

    assert first is not None and again is None
    assert Run.objects.get(id=run.id).worker == NODE


def test_a_cancelled_queued_run_is_not_claimed(owner):
    run = queued(make_job(owner, concurrency_policy=ALLOW))
    services.cancel_run(run)

    assert services.claim_run(run.id, NODE) is None
    assert Run.objects.get(id=run.id).status == Run.Status.CANCELLED


@pytest.mark.parametrize(
    "policy", [{"concurrency_policy": ALLOW, "max_concurrent": 2}, {}], ids=["limit", "forbid"]
)
def test_a_policy_that_looks_at_the_other_runs_claims_under_the_jobs_lock(owner, policy):
    job = make_job(owner, **policy)

    claimed, done = statements(lambda: services.claim_run(queued(job).id, NODE))

    assert claimed is not None
    # SQLite takes writes one at a time: a run alone is claimed by the one statement too.
    assert any("FOR UPDATE" in sql for sql in done) == POSTGRES, done


@pytest.mark.parametrize(
    ("policy", "status"),
    [({"concurrency_policy": ALLOW, "max_concurrent": 1}, Run.Status.SKIPPED),
     ({"concurrency_policy": ALLOW, "max_concurrent": 2}, Run.Status.RUNNING),
     ({}, Run.Status.SKIPPED)],
    ids=["at-limit", "under-limit", "forbid"],
)  # fmt: skip
def test_a_run_while_another_runs_is_judged_by_its_policy(owner, policy, status):
    job = make_job(owner, **policy)
    services.claim_run(queued(job).id, NODE)
    second = queued(job)

    services.claim_run(second.id, NODE)

    assert Run.objects.get(id=second.id).status == status


def test_a_quiet_end_writes_the_run_and_the_jobs_figures_at_once(owner):
    job = make_job(owner, concurrency_policy=ALLOW)
    run = services.claim_run(queued(job).id, NODE)

    _, done = statements(
        lambda: services.finish_run(run, Run.Status.FAILED, exit_code=3, output="out\n",
                                    error="exited with code 3", result={"k": [1]})
    )  # fmt: skip

    assert len(done) == (1 if POSTGRES else 4), done
    assert fields_of(run) == fields_of(Run.objects.get(id=run.id))
    stored = Run.objects.get(id=run.id)
    assert (stored.status, stored.exit_code, stored.output, stored.result) == (
        Run.Status.FAILED, 3, "out\n", {"k": [1]},
    )  # fmt: skip
    job.refresh_from_db()
    assert (job.total_runs, job.failed_runs, job.last_status, job.last_run_at) == (
        1, 1, Run.Status.FAILED, stored.started_at,
    )  # fmt: skip


def test_a_run_cancelled_while_it_ran_keeps_its_cancel_and_is_counted_once(owner):
    job = make_job(owner, concurrency_policy=ALLOW)
    run = services.claim_run(queued(job).id, NODE)
    services.cancel_run(run.id, reason="stop it")

    services.finish_run(run, Run.Status.SUCCEEDED, exit_code=0)
    services.finish_run(run, Run.Status.SUCCEEDED, exit_code=0)  # a redelivered report

    stored = Run.objects.get(id=run.id)
    assert (stored.status, stored.error, stored.exit_code) == (Run.Status.CANCELLED,
                                                               "stop it", 0)  # fmt: skip
    assert stored.duration is not None
    assert Job.objects.get(id=job.id).total_runs == 1


def test_an_end_that_sets_off_more_takes_the_long_path(owner):
    job = make_job(owner, concurrency_policy=ALLOW, max_retries=1, retry_delay=60)
    run = services.claim_run(queued(job).id, NODE)

    services.finish_run(run, Run.Status.FAILED, exit_code=1)

    retry = Run.objects.get(job=job, trigger=Run.Trigger.RETRY)
    assert (retry.status, retry.attempt) == (Run.Status.QUEUED, 2)
    assert Job.objects.get(id=job.id).total_runs == 1


@pytest.mark.skipif(not POSTGRES, reason="prepared statements are PostgreSQL's")
def test_the_claim_is_prepared_on_the_connection_after_a_few_runs(owner):
    """The server plans the claim once per connection, not per run (config/settings.py
    prepare_threshold; runs._cursor binds on the server, as Django's cursors do not)."""
    job = make_job(owner, concurrency_policy=ALLOW)
    for _ in range(6):
        assert services.claim_run(queued(job).id, NODE) is not None

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(sql.startswith("WITH claimed AS") for sql in prepared), prepared
