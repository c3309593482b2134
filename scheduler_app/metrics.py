"""The fleet's figures for Prometheus (GET /metrics), read at each scrape from where the
truth is kept, so every web process answers the same whatever process ran what:

- the database: runs by status over all time (:class:`RunTotal`), the durations and
  start lags as histograms (:class:`RunHistogram`), both kept by triggers; jobs by
  state; runs still going; open alerts. A few small indexed reads at any number of runs.
- Redis: the messages waiting in each queue, the workers up and beat's last tick
  (scheduler_app/presence.py), in one pipelined round trip.

A part that does not answer leaves out its figures, not the others':
``cronfleet_up{part}`` says which answered.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db.models import Count, Q, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from scheduler_app import presence
from scheduler_app.models import Alert, Job, Run, RunHistogram, RunTotal

logger = logging.getLogger(__name__)

# The buckets' upper bounds (seconds), as the triggers of migration 0018 sort runs into.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
START_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
HISTOGRAMS = {
    RunHistogram.Metric.DURATION: (
        "cronfleet_run_duration_seconds", DURATION_BUCKETS,
        "Run durations in seconds (runs that ended with a process end), over all time.",
    ),
    RunHistogram.Metric.START_LAG: (
        "cronfleet_start_lag_seconds", START_LAG_BUCKETS,
        "Seconds from a scheduled run's fire time to its start, over all time.",
    ),
}  # fmt: skip
REDIS_TIMEOUT = 1.0  # seconds; a Redis that does not answer costs a scrape at most this


class FleetCollector(Collector):
    """Collects at each scrape; registered in the endpoint's own registry (no describe:
    registering reads nothing)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "cronfleet_up", "Whether a part answered this scrape (1) or not (0).",
            labels=["part"],
        )  # fmt: skip
        queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
        try:
            from_database = [*database_families()]
            queues |= job_queues()
        except DatabaseError as exc:
            logger.warning("metrics: the database does not answer: %s", exc)
            from_database = None
        try:
            from_redis = redis_families(sorted(queues))
        except redis.RedisError as exc:
            logger.warning("metrics: Redis does not answer: %s", exc)
            from_redis = None
        for part, families in (("database", from_database), ("redis", from_redis)):
            up.add_metric([part], 0 if families is None else 1)
            yield from families or []
        yield up


# The database


def database_families() -> Iterator[Metric]:
    yield runs_total()
    yield from histograms(RunHistogram.objects.values_list("metric", "kind", "queue", "le",
                                                           "count", "sum"))  # fmt: skip
    yield jobs_by_state()
    yield runs_in_state()
    yield alerts_open()


def runs_total() -> Metric:
    family = CounterMetricFamily(
        "cronfleet_runs",
        "Finished runs by status, job kind and queue, over all time (those retention "
        "deleted too; a deleted job's runs leave the count).",
        labels=["status", "kind", "queue"],
    )
    rows = (RunTotal.objects.values_list("status", "job__kind", "job__queue").order_by()
            .annotate(n=Sum("count")))  # fmt: skip
    for status, kind, queue, n in rows:
        family.add_metric([status, kind, queue], n)
    return family


def histograms(rows: Iterable[tuple[str, str, str, float, int, float]]) -> Iterator[Metric]:
    """One histogram family per metric from the rows of :class:`RunHistogram` (each the
    count in its own bucket), with the cumulative buckets Prometheus expects."""
    series: dict[str, dict[tuple[str, str], dict[float, tuple[int, float]]]] = {
        metric: defaultdict(dict) for metric in HISTOGRAMS
    }
    for metric, kind, queue, le, count, total in rows:
        series[metric][kind, queue][le] = (count, total)
    for metric, (name, bounds, help_text) in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, help_text, labels=["kind", "queue"])
        for (kind, queue), buckets in sorted(series[metric].items()):
            family.add_metric([kind, queue], *cumulative(buckets, bounds))
        yield family


def cumulative(
    buckets: dict[float, tuple[int, float]], bounds: tuple[float, ...]
) -> tuple[list[tuple[str, float]], float]:
    """([(le, observations up to le)], their sum): every bound shown, empty ones too."""
    running, shown = 0, []
    for le in sorted({*map(float, bounds), *buckets, math.inf}):
        running += buckets.get(le, (0, 0.0))[0]
        shown.append((floatToGoString(le), running))
    return shown, sum(total for _, total in buckets.values())


def jobs_by_state() -> Metric:
    going = Q(completed_at__isnull=True)
    counts = Job.objects.order_by().aggregate(
        active=Count("id", filter=going & Q(enabled=True)),
        paused=Count("id", filter=going & Q(enabled=False)),
        completed=Count("id", filter=~going),
    )
    family = GaugeMetricFamily("cronfleet_jobs", "Jobs by state.", labels=["state"])
    for state, n in counts.items():
        family.add_metric([state], n)
    return family


def runs_in_state() -> Metric:
    found = dict(Run.objects.filter(status__in=Run.PENDING).values_list("status")
                 .annotate(n=Count("id")).order_by())  # fmt: skip
    family = GaugeMetricFamily(
        "cronfleet_runs_in_state", "Runs not finished yet, by status.", labels=["status"]
    )
    for status in Run.PENDING:
        family.add_metric([status], found.get(status, 0))
    return family


def alerts_open() -> Metric:
    found = dict(Alert.objects.filter(resolved_at__isnull=True).values_list("kind")
                 .annotate(n=Count("id")).order_by())  # fmt: skip
    family = GaugeMetricFamily("cronfleet_alerts_open", "Open alerts by kind.", labels=["kind"])
    for kind in Alert.Kind.values:
        family.add_metric([kind], found.get(kind, 0))
    return family


def job_queues() -> set[str]:
    """The queues jobs are sent to."""
    return set(Job.objects.order_by().values_list("queue", flat=True).distinct())


# Redis


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    """One client (and its pool of connections) per URL for the life of the process."""
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )


def broker_keys(queue: str) -> list[str]:
    """The Redis lists of ``queue``: kombu's Redis transport keeps one per priority step,
    the first under the queue's own name, the others as ``<queue><sep><step>``
    (kombu.transport.redis.Channel._q_for_pri)."""
    options: dict[str, Any] = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    sep, steps = options.get("sep", "\x06\x16"), options.get("priority_steps", [0, 3, 6, 9])
    return [f"{queue}{sep}{step}" if step else queue for step in steps]


def redis_families(queues: list[str]) -> list[Metric]:
    client = redis_client(settings.REDIS_URL)
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in broker_keys(queue):
                pipe.llen(key)
        presence.count_workers_up(pipe, settings.WORKER_PRESENCE_EVERY)
        pipe.get(presence.tick_key(settings.CELERY_REDBEAT_KEY_PREFIX))
        *lengths, workers, tick = pipe.execute()
    depth = GaugeMetricFamily(
        "cronfleet_queue_depth", "Messages waiting in the broker, by queue (every priority).",
        labels=["queue"],
    )  # fmt: skip
    per_queue = len(lengths) // len(queues) if queues else 0
    for i, queue in enumerate(queues):
        depth.add_metric([queue], sum(lengths[i * per_queue : (i + 1) * per_queue]))
    return [
        depth,
        GaugeMetricFamily(
            "cronfleet_workers_up",
            f"Workers that wrote their presence within {presence.MISSED_PERIODS} periods "
            "of WORKER_PRESENCE_EVERY.",
            value=workers,
        ),
        GaugeMetricFamily(
            "cronfleet_beat_last_tick_seconds",
            "Unix time of the active beat's last tick (0: none seen); its age is time() - this.",
            value=float(tick or 0),
        ),
    ]
