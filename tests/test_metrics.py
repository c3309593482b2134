"""GET /metrics: parsed with the Prometheus client's own parser; on the real stack its
counters and histograms equal what the runs table says; queue depth from the broker's
lists; refused without the token or from another address; served without Redis."""

from __future__ import annotations

import importlib
import json
import math
import re
import time
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_app import metrics, runs
from scheduler_app.embedded_redis import free_port
from scheduler_app.metrics import broker_keys
from scheduler_app.models import Job, Run, RunHistogram
from tests.helpers import create_job, make_job, manual_job, run_now, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docker" / "grafana" / "cronfleet-dashboard.json"
MIGRATION = importlib.import_module("scheduler_app.migrations.0018_metrics_run_histograms")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, Any], Samples]:
    """The families by name, and every sample by (name, labels)."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families.values()
        for sample in family.samples
    }
    return families, samples


def scrape(client: Client | None = None, **extra: str) -> tuple[dict[str, Any], Samples]:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


# Who may read them


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.7", "127.0.0.2x", "", "::ffff:8.8.8.8"])
def test_without_a_token_other_addresses_are_refused(address: str) -> None:
    response = Client().get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content
    assert b"cronfleet_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1"])
def test_without_a_token_loopback_is_served(address: str) -> None:
    families, _ = scrape(REMOTE_ADDR=address)
    assert "cronfleet_jobs" in families


@pytest.mark.django_db
def test_loopback_through_a_proxy_is_refused(settings: Any) -> None:
    """A proxy on the same host makes every client look local."""
    forwarded = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert forwarded.status_code == 403
    settings.TRUSTED_PROXY_COUNT = 1
    assert Client().get("/metrics").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer wrong-token", "Bearer s3cret-token-x",
               "bearer s3cret-token", "Token s3cret-token", "s3cret-token"],
)  # fmt: skip
def test_with_a_token_a_wrong_or_missing_token_is_refused(
    settings: Any, header: str | None
) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = Client().get("/metrics", **extra)  # from loopback: the token is still needed
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"cronfleet_" not in response.content


@pytest.mark.django_db
def test_with_the_token_any_address_is_served(settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    families, _ = scrape(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert "cronfleet_runs" in families


@pytest.mark.django_db
def test_only_get() -> None:
    assert Client().post("/metrics").status_code == 405


# The figures


@pytest.mark.django_db
def test_redis_down_still_serves_the_database_figures(settings: Any, owner: Any) -> None:
    make_job(owner, name="paused", enabled=False)
    make_job(owner, name="active")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    families, samples = scrape()
    assert time.monotonic() - started < 5
    assert samples["cronfleet_up", labels(part="redis")] == 0
    assert samples["cronfleet_up", labels(part="database")] == 1
    assert samples["cronfleet_jobs", labels(state="active")] == 1
    assert samples["cronfleet_jobs", labels(state="paused")] == 1
    assert "cronfleet_queue_depth" not in families
    assert "cronfleet_workers_up" not in families


@pytest.mark.django_db(transaction=True)
def test_database_down_still_serves_the_redis_figures(tmp_path: Path) -> None:
    """The connection is pointed at a database that cannot be opened (or reached), as
    when the server is down; the scrape still answers with Redis's figures."""
    from django.db import connection

    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path / "missing" / "db.sqlite3")
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    try:
        families, samples = scrape()
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    assert samples["cronfleet_up", labels(part="database")] == 0
    assert samples["cronfleet_up", labels(part="redis")] == 1
    assert ("cronfleet_queue_depth", labels(queue="default")) in samples
    assert "cronfleet_workers_up" in families
    assert not {"cronfleet_jobs", "cronfleet_runs", "cronfleet_runs_in_state"} & families.keys()


@pytest.mark.django_db(transaction=True)
def test_triggers_observe_each_duration_and_lag_once(owner: Any) -> None:
    """A cancelled run's duration comes when its process ends, once; a run by hand has no
    start lag; a run inserted running (policy "allow") has one."""
    job = make_job(owner, kind="command", queue="reports")
    slot = job.created_at.replace(microsecond=0)
    second, third = (slot + timedelta(seconds=n) for n in (1, 2))
    cancelled = runs.create(job=job, trigger=Run.Trigger.SCHEDULE, scheduled_for=slot)
    assert runs.claim(cancelled, "w@here")
    assert runs.cancel(cancelled.id, "stop")
    assert runs.finish(cancelled, Run.Status.FAILED, exit_code=-9) == Run.Status.CANCELLED
    assert runs.finish(cancelled, Run.Status.FAILED, exit_code=-9) == ""  # redelivered
    by_hand = runs.create(job=job, trigger=Run.Trigger.MANUAL, scheduled_for=second)
    assert runs.claim(by_hand, "w@here")
    runs.finish(by_hand, Run.Status.SUCCEEDED, exit_code=0)
    inserted = runs.create_running("w@here", job=job, trigger=Run.Trigger.SCHEDULE,
                                   scheduled_for=third)  # fmt: skip
    assert inserted is not None
    rows = RunHistogram.objects.filter(kind="command", queue="reports")
    counted = dict(rows.values_list("metric").annotate(n=Count("id")).order_by())
    totals = {metric: sum(rows.filter(metric=metric).values_list("count", flat=True))
              for metric in RunHistogram.Metric.values}  # fmt: skip
    assert counted and totals == {"duration": 2, "start_lag": 2}
    durations = sum(rows.filter(metric="duration").values_list("sum", flat=True))
    expected = sum(Run.objects.filter(duration__isnull=False).values_list("duration", flat=True))
    assert math.isclose(durations, expected, abs_tol=1e-6)


def test_buckets_shown_are_the_buckets_the_triggers_fill() -> None:
    assert metrics.DURATION_BUCKETS == MIGRATION.DURATION_BUCKETS
    assert metrics.START_LAG_BUCKETS == MIGRATION.START_LAG_BUCKETS


def test_broker_keys_follow_kombus_priority_lists() -> None:
    """kombu's own naming, asked of its Redis channel's rule for these settings."""
    from kombu.transport.redis import Channel

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    channel = Channel.__new__(Channel)
    channel.sep, channel.priority_steps = options["sep"], options["priority_steps"]
    expected = [channel._q_for_pri("reports", step) for step in options["priority_steps"]]
    assert broker_keys("reports") == expected
    assert len(set(expected)) == 10


# On the real stack


def finished_by_labels() -> Counter[frozenset[tuple[str, str]]]:
    finished = Run.objects.filter(status__in=Run.FINISHED)
    rows = finished.values_list("status", "job__kind", "job__queue").annotate(n=Count("id"))
    rows = rows.order_by()
    return Counter({labels(status=s, kind=k, queue=q): n for s, k, q, n in rows})


def histogram_of(values_by_labels: dict[tuple[str, str], list[float]],
                 bounds: tuple[float, ...]) -> dict[str, dict[frozenset, float]]:  # fmt: skip
    """The _bucket, _count and _sum samples Prometheus should show for these values."""
    out: dict[str, dict[frozenset, float]] = {"bucket": {}, "count": {}, "sum": {}}
    for (kind, queue), values in values_by_labels.items():
        for le in (*bounds, math.inf):
            name = "+Inf" if le == math.inf else repr(float(le))
            out["bucket"][labels(kind=kind, queue=queue, le=name)] = sum(v <= le for v in values)
        out["count"][labels(kind=kind, queue=queue)] = len(values)
        out["sum"][labels(kind=kind, queue=queue)] = sum(values)
    return out


def assert_histogram(samples: Samples, name: str, expected: dict[str, dict]) -> None:
    for part in ("bucket", "count"):
        assert series(samples, f"{name}_{part}") == expected[part], part
    got = series(samples, f"{name}_sum")
    assert got.keys() == expected["sum"].keys()
    for key, value in expected["sum"].items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-5)


def real_scrape(live_server: Any) -> tuple[dict[str, Any], Samples]:
    """Over HTTP, from loopback, as Prometheus on this host would."""
    with urllib.request.urlopen(live_server.url + "/metrics", timeout=10) as response:
        return parse(response.read().decode())


@pytest.mark.stack
def test_counters_and_histograms_equal_the_runs(live: Any, api: Any, live_server: Any) -> None:
    anyhow = {"concurrency_policy": "allow"}  # runs asked for at once all run
    passing = manual_job(api, "passes", "true", **anyhow)
    failing = manual_job(api, "fails", "exit 3", **anyhow)
    sleepy = manual_job(api, "sleeps", "sleep 0.3", **anyhow)
    ticking = create_job(api, name="ticks", payload={"command": "true"}, schedule="every 1 seconds",
                         concurrency_policy="allow")  # fmt: skip
    for job in (passing, passing, passing, failing, failing, sleepy):
        run_now(api, job)

    def all_ended() -> bool:
        """six runs by hand and three scheduled ones ended"""
        by_hand = Run.objects.filter(trigger=Run.Trigger.MANUAL, status__in=Run.FINISHED)
        scheduled = Run.objects.filter(job_id=ticking["id"], status__in=Run.FINISHED)
        return by_hand.count() == 6 and scheduled.count() >= 3

    wait_for(all_ended, timeout=60)
    api.post(f"/api/v1/jobs/{ticking['id']}/pause/")
    wait_for(lambda: not Run.objects.filter(status__in=Run.PENDING).exists(), timeout=30)

    families, samples = real_scrape(live_server)
    assert family_types(families) >= {("cronfleet_runs", "counter"),
                                      ("cronfleet_run_duration_seconds", "histogram"),
                                      ("cronfleet_start_lag_seconds", "histogram")}  # fmt: skip
    expected = finished_by_labels()
    assert expected[labels(status="succeeded", kind="command", queue="default")] >= 7
    assert expected[labels(status="skipped", kind="command", queue="default")] == 0
    assert expected[labels(status="failed", kind="command", queue="default")] == 2
    assert series(samples, "cronfleet_runs_total") == dict(expected)

    timed = Run.objects.filter(duration__isnull=False).select_related("job")
    durations: dict[tuple[str, str], list[float]] = {}
    for run in timed:
        durations.setdefault((run.job.kind, run.job.queue), []).append(run.duration)
    assert_histogram(samples, "cronfleet_run_duration_seconds",
                     histogram_of(durations, metrics.DURATION_BUCKETS))  # fmt: skip
    assert any(d >= 0.3 for d in durations["command", "default"])  # the sleeper's bucket

    started = Run.objects.filter(trigger=Run.Trigger.SCHEDULE, started_at__isnull=False)
    lags: dict[tuple[str, str], list[float]] = {}
    for run in started.select_related("job"):
        lag = (run.started_at - run.scheduled_for).total_seconds()
        lags.setdefault((run.job.kind, run.job.queue), []).append(lag)
    assert len(lags["command", "default"]) >= 3
    assert_histogram(samples, "cronfleet_start_lag_seconds",
                     histogram_of(lags, metrics.START_LAG_BUCKETS))  # fmt: skip

    assert series(samples, "cronfleet_runs_in_state") == {
        labels(status=status): 0 for status in Run.PENDING
    }
    assert (
        samples["cronfleet_jobs", labels(state="active")]
        == Job.objects.filter(enabled=True).count()
    )
    assert samples["cronfleet_jobs", labels(state="paused")] == 1
    assert samples["cronfleet_workers_up", frozenset()] == 1
    tick = samples["cronfleet_beat_last_tick_seconds", frozenset()]
    assert time.time() - 10 < tick <= time.time() + 1
    assert series(samples, "cronfleet_up") == {labels(part="database"): 1, labels(part="redis"): 1}


def family_types(families: dict[str, Any]) -> set[tuple[str, str]]:
    return {(family.name, family.type) for family in families.values()}


@pytest.mark.stack
def test_queue_depth_counts_the_messages_waiting(live: Any, api: Any, redis_client: Any) -> None:
    """A queue no worker consumes: its runs' messages wait there, in the lists of their
    priorities; the queue the worker consumes is drained."""
    queue = "nobody-consumes"
    urgent = manual_job(api, "urgent", "true", queue=queue, priority=9)
    later = manual_job(api, "later", "true", queue=queue, priority=2)
    for job in (urgent, urgent, later):
        run_now(api, job)

    def sent() -> int:
        """the three messages are in the broker"""
        return sum(redis_client.llen(key) for key in broker_keys(queue)) == 3

    try:
        wait_for(sent, timeout=10)
        used = [key for key in broker_keys(queue) if redis_client.llen(key)]
        assert len(used) == 2  # two priorities: two of kombu's lists
        _, samples = scrape()
        assert samples["cronfleet_queue_depth", labels(queue=queue)] == 3
        assert samples["cronfleet_runs_in_state", labels(status="queued")] == 3
        wait_for(lambda: scrape()[1]["cronfleet_queue_depth", labels(queue="default")] == 0)
    finally:
        redis_client.delete(*broker_keys(queue))


@pytest.mark.stack
def test_workers_up_and_beats_tick_follow_the_processes(live: Any) -> None:
    """A second worker node is counted while it runs and not once it stopped; beat's tick
    stops moving when beat stops."""

    def figure(name: str) -> float:
        return scrape()[1][name, frozenset()]

    live.start_worker(name="second", node="w9")
    wait_for(lambda: figure("cronfleet_workers_up") == 2, timeout=60)
    live.stop("second")
    wait_for(lambda: figure("cronfleet_workers_up") == 1, timeout=10)
    assert time.time() - figure("cronfleet_beat_last_tick_seconds") < 5
    live.stop("beat")  # the live fixture starts it again
    stopped = figure("cronfleet_beat_last_tick_seconds")
    time.sleep(2.5)
    assert figure("cronfleet_beat_last_tick_seconds") == stopped
    assert time.time() - stopped > 2


# The dashboard


@pytest.mark.django_db
def test_the_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel.get("targets", [])]  # fmt: skip
    assert len(expressions) >= 6
    named = {name for expr in expressions for name in re.findall(r"\bcronfleet_\w+", expr)}
    families, _ = scrape()
    served = set()
    for family in families.values():
        served |= {sample.name for sample in family.samples} | {family.name}
        if family.type == "histogram":
            served |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        if family.type == "counter":
            served.add(family.name + "_total")
    assert named <= served, named - served
    assert {"cronfleet_runs_total", "cronfleet_run_duration_seconds_bucket",
            "cronfleet_start_lag_seconds_bucket", "cronfleet_queue_depth",
            "cronfleet_workers_up", "cronfleet_beat_last_tick_seconds"} <= named  # fmt: skip
