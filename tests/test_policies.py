"""Each policy's decision, from plain data: no worker, no broker, no database."""

from __future__ import annotations

import pytest

from scheduler_app import concurrency, dependencies, fanout, graph, notifications, retries
from scheduler_app.concurrency import Admission
from scheduler_app.models import Job, JobDependency, Run

S = Run.Status


@pytest.mark.parametrize(
    ("policy", "limit", "running", "another_waits", "expected"),
    [
        ("forbid", None, [], False, concurrency.START),
        ("forbid", None, [7], False, Admission(False, skip="skipped: run 7 is still running")),
        ("allow", None, [7, 8, 9], False, concurrency.START),
        ("allow", 3, [7, 8], False, concurrency.START),
        (
            "allow", 2, [7, 8], False,
            Admission(False, skip="skipped: 2 runs are running, max_concurrent is 2"),
        ),
        ("replace", None, [7, 8], False, Admission(True, replace=(7, 8))),
        ("queue_one", None, [7], False, Admission(False, wait="waiting: run 7 is still running")),
        ("queue_one", None, [7], True, Admission(False, skip="skipped: run 7 is still running")),
        ("queue_one", None, [], True, concurrency.START),
    ],
)  # fmt: skip
def test_admission(policy, limit, running, another_waits, expected):
    assert concurrency.admit(policy, limit, running, another_waits) == expected


def job(**fields) -> Job:
    return Job(**{"max_retries": 2, "retry_delay": 10, "retry_backoff": False, **fields})


@pytest.mark.parametrize("status", [S.FAILED, S.TIMED_OUT, S.LOST])
def test_a_failure_is_retried_until_the_last_attempt(status):
    assert retries.plan(job(), status, attempt=1) == retries.Retry(attempt=2, countdown=10.0)
    assert retries.plan(job(), status, attempt=2) == retries.Retry(attempt=3, countdown=10.0)
    assert retries.plan(job(), status, attempt=3) is None


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.CANCELLED, S.SKIPPED, S.MISSED])
def test_nothing_else_is_retried(status):
    assert retries.plan(job(), status, attempt=1) is None


def test_backoff_doubles_is_capped_and_jittered():
    backing_off = job(retry_backoff=True)
    assert [retries.delay(backing_off, n, spread=0) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
    assert retries.delay(backing_off, 3, spread=1) == 32.0
    assert retries.delay(backing_off, 40, spread=0) == retries.MAX_RETRY_DELAY
    assert retries.delay(job(retry_delay=10**9), 1) == retries.MAX_RETRY_DELAY


@pytest.mark.parametrize(
    ("on", "status", "starts"),
    [
        ("success", S.SUCCEEDED, True), ("success", S.FAILED, False),
        ("failure", S.FAILED, True), ("failure", S.TIMED_OUT, True), ("failure", S.LOST, True),
        ("failure", S.SUCCEEDED, False), ("always", S.SUCCEEDED, True),
        ("always", S.LOST, True), ("always", S.CANCELLED, False), ("always", S.SKIPPED, False),
    ],
)  # fmt: skip
def test_which_ends_start_a_dependent(on, status, starts):
    assert dependencies.matches(on, status) is starts


def test_paused_and_completed_dependents_do_not_start():
    active, paused, done = job(name="a"), job(name="p", enabled=False), job(name="d")
    done.completed_at = "2030-01-01T00:00:00Z"
    links = [JobDependency(job=j, on="success") for j in (active, paused, done)]
    assert dependencies.to_start(links, S.SUCCEEDED) == [active]


def test_fan_out_waits_for_every_child_then_judges_by_quorum():
    assert fanout.verdict({"a": S.SUCCEEDED, "b": S.RUNNING}, None).status is None
    assert fanout.verdict({"a": S.SUCCEEDED, "b": S.SUCCEEDED}, None).status == S.SUCCEEDED
    failed = fanout.verdict({"a": S.SUCCEEDED, "b": S.FAILED}, None)
    assert (failed.status, failed.error) == (S.FAILED, "1 of 2 nodes succeeded; quorum is 2.")
    assert fanout.verdict({"a": S.SUCCEEDED, "b": S.FAILED}, 1).status == S.SUCCEEDED
    # A quorum larger than the nodes there are means all of them.
    assert fanout.verdict({"a": S.SUCCEEDED}, 5).summary["quorum"] == 1


@pytest.mark.parametrize(
    ("status", "previous", "retrying", "events"),
    [
        (S.FAILED, S.SUCCEEDED, False, ["failure"]),
        (S.FAILED, None, True, []),
        (S.LOST, None, False, ["failure"]),
        (S.SUCCEEDED, None, False, ["success"]),
        (S.SUCCEEDED, S.TIMED_OUT, False, ["success", "recovery"]),
        (S.SKIPPED, S.FAILED, False, []),
        (S.CANCELLED, None, False, []),
    ],
)
def test_notification_events(status, previous, retrying, events):
    assert notifications.events_for(status, previous, retrying) == events


def test_only_subscribed_events_with_someone_to_tell():
    assert notifications.wanted(job(notify_on=["failure"]), ["failure"]) == []
    subscribed = job(notify_on=["recovery"], notify_webhooks=["https://hooks.example/x"])
    assert notifications.wanted(subscribed, ["success", "recovery"]) == ["recovery"]


def test_a_cycle_is_found_through_any_path():
    upstreams = {1: [2], 2: [3], 3: [4]}
    assert graph.find_cycle(upstreams, 4) is None
    assert graph.find_cycle({**upstreams, 4: [1]}, 4) == [4, 1, 2, 3, 4]
    assert graph.find_cycle({5: [5]}, 5) == [5, 5]
