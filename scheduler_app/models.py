"""Jobs (what to run and when) and runs (each time one ran). The database is the truth."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from scheduler_app import graph, payloads, schedules, validation
from scheduler_app.encryption import SecretEnvField


def notify_on_failure() -> list[str]:
    return ["failure"]


class OwnedModel(models.Model):
    """A row that belongs to one user, named uniquely among that user's rows."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="%(class)ss"
    )
    # Shared with a team: its members have their role's rights (scheduler_app/access.py).
    team = models.ForeignKey(
        "Team", on_delete=models.PROTECT, null=True, blank=True, related_name="%(class)ss"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], name="%(class)s_name_unique_per_owner"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Calendar(OwnedModel):
    """Named dates (public holidays, freeze days) that jobs skip or move away from."""

    dates = models.JSONField(default=list, help_text="Dates as YYYY-MM-DD, in each job's zone.")

    def clean(self) -> None:
        if not isinstance(self.dates, list):
            raise ValidationError({"dates": "must be a list of dates as YYYY-MM-DD."})
        for day in self.dates:
            try:
                date.fromisoformat(day)
            except (TypeError, ValueError):
                raise ValidationError({"dates": f"{day!r} is not a date as YYYY-MM-DD."}) from None

    def excluded(self) -> frozenset[date]:
        return frozenset(date.fromisoformat(day) for day in self.dates)


class Job(models.Model):
    # One per payload validator: a kind exists where its payload rules do.
    Kind = models.TextChoices("Kind", [(kind.upper(), kind) for kind in payloads.KINDS])

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    # Shared with a team: its members have their role's rights (scheduler_app/access.py).
    team = models.ForeignKey(
        "Team", on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.COMMAND)
    payload = models.JSONField(default=dict)
    schedule = models.JSONField(help_text="Canonical schedule object, see schedules.normalize().")
    timezone = models.CharField(max_length=64, default="UTC")
    start_at = models.DateTimeField(null=True, blank=True, help_text="No fire time before.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="No fire time after.")
    window = models.JSONField(
        null=True, blank=True, help_text='Allowed window: {"days_of_week", "start", "end"}.'
    )
    jitter = models.PositiveIntegerField(default=0, help_text="Seconds; a fixed offset per job.")
    calendar = models.ForeignKey(
        Calendar, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )

    class CalendarPolicy(models.TextChoices):
        SKIP = "skip"
        SHIFT = "shift"

    calendar_policy = models.CharField(
        max_length=8, choices=CalendarPolicy.choices, default=CalendarPolicy.SKIP
    )
    misfire_grace = models.PositiveIntegerField(
        default=60, help_text="Seconds late before a fire time counts as missed."
    )

    class Catchup(models.TextChoices):
        SKIP = "skip"
        ONCE = "once"
        ALL = "all"

    catchup = models.CharField(max_length=8, choices=Catchup.choices, default=Catchup.ONCE)

    enabled = models.BooleanField(default=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Why the job was paused when the scheduler paused it (its owner was deactivated);
    # cleared when it is resumed.
    paused_reason = models.CharField(max_length=500, blank=True)

    timeout = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    max_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    max_cpu_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_retries = models.PositiveSmallIntegerField(default=0)
    retry_delay = models.PositiveIntegerField(default=0, help_text="Seconds.")
    retry_backoff = models.BooleanField(default=False)

    class ConcurrencyPolicy(models.TextChoices):
        FORBID = "forbid"
        ALLOW = "allow"
        REPLACE = "replace"
        QUEUE_ONE = "queue_one"

    concurrency_policy = models.CharField(
        max_length=16, choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.FORBID
    )
    fan_out = models.BooleanField(
        default=False, help_text="Run once on every live worker of the queue."
    )
    quorum = models.PositiveIntegerField(
        null=True, blank=True, help_text="With fan_out: nodes that must succeed (default all)."
    )
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="With concurrency_policy 'allow': at most this many."
    )
    # Targeting (scheduler_app/targeting.py): the nodes a run goes to, by name, node group
    # or label selector; ``any`` runs once on one of them, ``each`` once on every one.
    targets = models.JSONField(
        null=True, blank=True, help_text='{"nodes": [...], "groups": [...], "labels": "role=db"}'
    )

    class TargetMode(models.TextChoices):
        ANY = "any"
        EACH = "each"

    target_mode = models.CharField(
        max_length=8, choices=TargetMode.choices, default=TargetMode.EACH
    )
    max_parallel = models.PositiveIntegerField(
        null=True, blank=True, help_text="With targets (each): nodes at a time (rolling)."
    )
    halt_on_failure = models.BooleanField(
        default=False, help_text="With targets (each): send no more nodes after a failure."
    )
    priority = models.PositiveSmallIntegerField(default=5)
    queue = models.CharField(max_length=64, default="default")
    env = SecretEnvField(default=dict, blank=True, help_text="Secret values are stored encrypted.")
    notify_emails = models.JSONField(default=list, blank=True)
    notify_webhooks = models.JSONField(default=list, blank=True)
    notify_on = models.JSONField(
        default=notify_on_failure, blank=True, help_text="Any of: failure, success, recovery."
    )
    condition = models.TextField(
        blank=True, help_text="A shell command run first; a non-zero exit skips the run."
    )
    working_dir = models.CharField(max_length=500, blank=True)
    # The dead-man's switch (scheduler_app/alerts.py): tell the job's recipients when a
    # slot passes with no run started within this many seconds, when a run starts this
    # many seconds late, or runs longer than this (seconds, or "auto" from its history).
    alert_if_missed = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    alert_if_late = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    alert_if_longer = models.JSONField(
        null=True, blank=True, help_text='Seconds, or "auto": a factor over its p95 duration.'
    )

    # When the current schedule took effect (creation, a schedule change, a resume):
    # interval grids start here and no fire time before it is due.
    schedule_start = models.DateTimeField()
    # The scheduled time of the latest fire; with schedule_start it rebuilds RedBeat.
    last_fired_for = models.DateTimeField(null=True, blank=True)

    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True)
    total_runs = models.PositiveIntegerField(default=0)
    failed_runs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Counted up by the database at every save (and completion): the job's RedBeat entry
    # carries the revision it was written from, and an entry is never overwritten or
    # removed by a writer that read an older row (see scheduler_app.redbeat).
    revision = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="job_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(priority__lte=9), name="job_priority_0_9"),
        ]
        indexes = [
            models.Index(fields=["enabled", "next_run_at"], name="job_due_idx"),
            models.Index(fields=["owner", "next_run_at"], name="job_owner_next_idx"),
        ]
        permissions = [("run_code", "Can define jobs that run code")]

    def __str__(self) -> str:
        return self.name

    # Written by the run lifecycle (firing, finishing, completing), never by an edit:
    # saving an edited job leaves them as they are, so an edit made from a row read a
    # moment ago cannot undo a run's count or a fire recorded meanwhile.
    LIFECYCLE_FIELDS = frozenset(
        {"last_fired_for", "last_run_at", "last_status", "total_runs", "failed_runs",
         "completed_at"}
    )  # fmt: skip
    # What a job reports about itself: shown by the API and the admin, never edited.
    REPORTED_FIELDS = ("next_run_at", "last_run_at", "last_status", "total_runs",
                       "failed_runs", "paused_reason", "created_at", "updated_at")  # fmt: skip
    # Kept true by save() itself, so they are written with any field list.
    DERIVED_FIELDS = ("schedule_start", "paused_at", "resumed_at", "paused_reason", "next_run_at",
                      "updated_at", "revision")  # fmt: skip

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """Restart the schedule's clock when it changes; note pauses; keep next_run_at true.

        A changed schedule counts its fire times from now. A paused job keeps its
        clock: the times it missed while paused are handled by ``catchup``. An update
        writes only the fields an edit may change (not LIFECYCLE_FIELDS), or the
        ``update_fields`` given plus the derived ones.
        """
        loaded = getattr(self, "_loaded_timing", None)
        now = timezone.now()
        if self.schedule_start is None or loaded is None or loaded[:2] != self._timing()[:2]:
            self.schedule_start = now
        if loaded is not None and loaded[2] != self.enabled:
            if self.enabled:
                self.resumed_at = now
                self.paused_reason = ""
            else:
                self.paused_at = now
        inserting = self._state.adding
        self.next_run_at = self.compute_next_run_at()
        if not inserting:
            kwargs["update_fields"] = self._fields_to_write(kwargs.get("update_fields"))
            # Counted by the database under the row's lock: concurrent saves get distinct
            # revisions, in the order they commit.
            self.revision = F("revision") + 1
        super().save(*args, **kwargs)
        if not inserting:
            del self.revision  # deferred: read from the row if asked for (not an F())
        self._loaded_timing = self._timing()
        if inserting and self.jitter:
            # The jitter offset is seeded by the id, which exists only now.
            self.next_run_at = self.compute_next_run_at()
            Job.objects.filter(pk=self.pk).update(next_run_at=self.next_run_at)

    def clean(self) -> None:
        """The job rules (scheduler_app.validation), with the values normalised in place.

        A value as it is saved is not judged again: a one-time schedule that has
        since passed stays valid.
        """
        saved = None
        if not self._state.adding:
            saved = Job.objects.filter(pk=self.pk).values(*validation.RULED_FIELDS).first()
        try:
            values = validation.clean_job(validation.values_of(self), saved)
        except validation.JobRulesError as exc:
            raise ValidationError(exc.errors) from exc
        for name, value in values.items():
            setattr(self, name, value)

    def _fields_to_write(self, asked: Iterable[str] | None) -> list[str]:
        if asked is not None:
            return sorted({*asked, *self.DERIVED_FIELDS})
        return [
            field.name
            for field in self._meta.concrete_fields
            if not field.primary_key and field.name not in self.LIFECYCLE_FIELDS
        ]

    TIMING_FIELDS = ("schedule", "timezone", "enabled")

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        # Not for a row read without them (the reload of a deferred field): reading
        # them would load each, through here again.
        if set(cls.TIMING_FIELDS).issubset(field_names):
            instance._loaded_timing = instance._timing()
        return instance

    def _timing(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.TIMING_FIELDS)

    @property
    def status(self) -> str:
        if self.completed_at:
            return self.Status.COMPLETED
        return self.Status.ACTIVE if self.enabled else self.Status.PAUSED

    @property
    def can_end(self) -> bool:
        """Whether the schedule can run out of fire times (a once, an end_at)."""
        members = self.schedule.get("schedules", [self.schedule])
        return self.end_at is not None or any(m.get("type") == "once" for m in members)

    @property
    def is_scheduled(self) -> bool:
        """Whether beat should fire this job at all."""
        return self.enabled and not self.completed_at and self.schedule.get("type") != "manual"

    def beat_params(self) -> dict[str, object]:
        """Everything beat needs to compute this job's fire times, as plain values."""
        return {
            "spec": self.schedule,
            "timezone": self.timezone,
            "anchor": (self.schedule_start or timezone.now()).isoformat(),
            "start_at": self.start_at.isoformat() if self.start_at else None,
            "end_at": self.end_at.isoformat() if self.end_at else None,
            "jitter": self.jitter,
            "seed": f"job:{self.pk}",
        }

    def get_schedule(self) -> schedules.Schedule:
        """The fire times, as beat evaluates them."""
        return schedules.from_beat_params(self.beat_params())

    def timing(self) -> schedules.Timing:
        """The fire times and what happens at each (allowed window, calendar)."""
        return schedules.Timing.with_policies(
            self.get_schedule(), schedules.get_zone(self.timezone), self.window, self.calendar,
            self.calendar_policy,
        )  # fmt: skip

    @property
    def schedule_description(self) -> str:
        return self.timing().describe() if self.schedule else ""

    @property
    def schedule_reference(self) -> datetime:
        """The instant after which the next fire time is counted."""
        if self.last_fired_for and self.last_fired_for > self.schedule_start:
            return self.last_fired_for
        return self.schedule_start

    def compute_next_run_at(self) -> datetime | None:
        if not self.is_scheduled:
            return None
        return self.timing().next_run(self.schedule_reference.astimezone(UTC))


class JobTemplate(OwnedModel):
    """Defaults for any job field; a job is made from it with overrides."""

    defaults = SecretEnvField(
        default=dict, env_key="env", help_text="Job fields, as the API takes them."
    )


class StoredFile(models.Model):
    """A file uploaded once (``POST /api/v1/files/``) that ``file`` jobs deploy to nodes.

    Its bytes live in the ``files`` storage (settings.STORAGES) under ``storage_name``,
    a name the scheduler makes up (never the uploader's path); ``name`` is the plain
    file name it gets on a node, ``sha256`` the digest computed while it was stored."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_files"
    )
    team = models.ForeignKey(
        "Team", on_delete=models.PROTECT, null=True, blank=True, related_name="stored_files"
    )
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class Software(OwnedModel):
    """A catalogue entry that ``software`` jobs install: a version, how to install it
    (a shell ``install`` command or a ``pip`` requirement) and a ``check`` command that
    prints the version installed. A job may ask for another version of it."""

    version = models.CharField(max_length=100)
    install = models.TextField(blank=True)
    pip = models.CharField(max_length=200, blank=True)
    # ``check`` in the API (the name Model.check() takes here).
    check_command = models.TextField()
    uninstall = models.TextField(blank=True)

    class Meta(OwnedModel.Meta):
        verbose_name_plural = "software"


class JobDependency(models.Model):
    """``job`` runs when a run of ``upstream`` finishes the way ``on`` says."""

    class On(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"
        ALWAYS = "always"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependencies")
    upstream = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependents")
    on = models.CharField(max_length=8, choices=On.choices, default=On.SUCCESS)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "upstream"], name="dependency_unique"),
            models.CheckConstraint(condition=~Q(job=F("upstream")), name="dependency_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.upstream} -> {self.job} on {self.on}"

    def clean(self) -> None:
        if self.job_id and self.upstream_id:
            others = list(
                self.job.dependencies.exclude(pk=self.pk).values_list("upstream_id", flat=True)
            )
            if problem := cycle_problem(self.job_id, [*others, self.upstream_id]):
                raise ValidationError({"upstream": problem})


def cycle_problem(job_id: int, upstream_ids: list[int]) -> str:
    """Why these upstreams of the job would close a cycle of dependencies, or ''."""
    if job_id in upstream_ids:
        return "a job cannot depend on itself."
    edges = graph.edges(JobDependency.objects.values_list("job_id", "upstream_id"))
    edges[job_id] = list(upstream_ids)
    cycle = graph.find_cycle(edges, job_id)
    if cycle is None:
        return ""
    names = dict(Job.objects.filter(id__in=cycle).values_list("id", "name"))
    return "this would make a cycle: " + " -> ".join(names[i] for i in reversed(cycle)) + "."


class Run(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"
        RETRY = "retry"
        DEPENDENCY = "dependency"

    class Status(models.TextChoices):
        QUEUED = "queued"
        WAITING = "waiting"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        CANCELLED = "cancelled"
        SKIPPED = "skipped"
        MISSED = "missed"
        LOST = "lost"

    FINISHED = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.TIMED_OUT,
        Status.CANCELLED,
        Status.SKIPPED,
        Status.MISSED,
        Status.LOST,
    )
    # Ended badly: counted as failed, retried, a dependency's "failure".
    FAILURES = (Status.FAILED, Status.TIMED_OUT, Status.LOST)
    # Not ended yet: holds or may take a place under the job's concurrency policy.
    PENDING = (Status.QUEUED, Status.WAITING, Status.RUNNING)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    scheduled_for = models.DateTimeField()
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    exit_code = models.IntegerField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    # A fan-out run has one child per node; ``node`` is the worker a child is sent to.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    node = models.CharField(max_length=255, blank=True)
    # When its message is due at a worker: when it was queued, or later for a retry's
    # countdown or a calendar shift. A run still queued long after is sent again.
    due_at = models.DateTimeField(default=timezone.now)
    # Written by its worker with every output flush (about a second): a running run
    # whose heartbeat stops is lost, whatever its node says.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When a sweep first found it silent; the next sweep loses it only if it stayed so,
    # so a database that was away for everyone does not take beating runs for dead.
    suspected_at = models.DateTimeField(null=True, blank=True)
    # The process group of its child on ``worker`` (for an operator; a lost run's
    # processes are found by their environment, see workers/orphans.py).
    pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # A doubled dispatch (two beats, a redelivery) cannot make a doubled run.
            models.UniqueConstraint(
                fields=["job", "scheduled_for", "attempt", "node"], name="run_identity_unique"
            ),
        ]
        indexes = [
            # The API's lists of runs, newest first, whole or by one filter (api/pagination.py).
            models.Index(fields=["-queued_at", "-id"], name="run_recent_idx"),
            models.Index(fields=["job", "-queued_at", "-id"], name="run_job_recent_idx"),
            models.Index(fields=["status", "-queued_at", "-id"], name="run_status_idx"),
            models.Index(fields=["trigger", "-queued_at", "-id"], name="run_trigger_recent_idx"),
            models.Index(fields=["worker", "-queued_at", "-id"], name="run_worker_recent_idx"),
            models.Index(fields=["worker", "status"], name="run_worker_status_idx"),
            models.Index(fields=["node", "-queued_at", "-id"], name="run_node_recent_idx"),
            models.Index(fields=["status", "due_at"], name="run_status_due_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat_idx"),
            models.Index(fields=["finished_at"], name="run_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of job {self.job_id} (attempt {self.attempt})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    def identity_env(self) -> dict[str, str]:
        """The environment variables that name this run in its processes (ids alone
        repeat across scheduler databases; with the job and the time they do not)."""
        return {
            "SCHEDULER_JOB_ID": str(self.job_id),
            "SCHEDULER_RUN_ID": str(self.id),
            "SCHEDULER_SCHEDULED_FOR": self.scheduled_for.isoformat(),
        }


class RunTally(models.Model):
    """Runs that retention deleted (scheduler_app/retention.py), summed per job and status:
    what went. (GET /api/v1/stats/ reads RunTotal, which counts them still.)"""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="run_tallies")
    status = models.CharField(max_length=16, choices=Run.Status.choices)
    count = models.PositiveBigIntegerField(default=0)
    duration_sum = models.FloatField(default=0.0, help_text="Seconds, over the timed runs.")
    duration_count = models.PositiveBigIntegerField(default=0, help_text="Runs with a duration.")
    duration_max = models.FloatField(null=True, blank=True, help_text="Seconds.")

    class Meta:
        verbose_name_plural = "run tallies"
        ordering = ["job", "status"]
        constraints = [
            models.UniqueConstraint(fields=["job", "status"], name="run_tally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.count} {self.status} runs pruned"


class RunTotal(models.Model):
    """Finished runs of a job by status, over all time (those retention deleted too), and
    their durations: GET /api/v1/stats/ reads these few rows, not the runs.

    Kept by database triggers on the runs table (migration 0017_api_indexes_run_totals):
    a run is added when it becomes finished (or is inserted finished), and its duration
    when the process of a run cancelled while it ran ends. Nothing else writes them, and
    no run's end costs another statement."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="run_totals")
    status = models.CharField(max_length=16, choices=Run.Status.choices)
    count = models.PositiveBigIntegerField(default=0)
    duration_sum = models.FloatField(default=0.0, help_text="Seconds, over the timed runs.")
    duration_count = models.PositiveBigIntegerField(default=0, help_text="Runs with a duration.")
    duration_max = models.FloatField(null=True, blank=True, help_text="Seconds.")

    class Meta:
        ordering = ["job", "status"]
        constraints = [
            models.UniqueConstraint(fields=["job", "status"], name="run_total_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.count} {self.status} runs"


class RunHistogram(models.Model):
    """Buckets of the runs' durations and start lags by job kind and queue, over all time:
    GET /metrics reads these few rows, not the runs (scheduler_app/metrics.py).

    A row holds the observations in its bucket only (``le`` is its upper bound, the one
    below it the lower), not the cumulative count Prometheus shows. Kept by database
    triggers on the runs table (migration 0018_metrics_run_histograms), like
    :class:`RunTotal`: a duration is observed when a run gets one, a start lag
    (``started_at - scheduled_for``) when a scheduled run starts."""

    class Metric(models.TextChoices):
        DURATION = "duration"
        START_LAG = "start_lag"

    metric = models.CharField(max_length=16, choices=Metric.choices)
    kind = models.CharField(max_length=16)
    queue = models.CharField(max_length=64)
    le = models.FloatField(help_text="The bucket's upper bound, seconds (inf: the last).")
    count = models.PositiveBigIntegerField(default=0)
    sum = models.FloatField(default=0.0, help_text="Seconds, over the bucket's observations.")

    class Meta:
        ordering = ["metric", "kind", "queue", "le"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "kind", "queue", "le"], name="run_histogram_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.kind}/{self.queue} <= {self.le}: {self.count}"


class Alert(models.Model):
    """Something that should have happened and did not: the dead-man's switch.

    An alert is open while its condition holds and resolved when it stops holding;
    a job has at most one open alert of each kind (the scheduler at most one
    ``scheduler_down``), so a condition that lasts is told once, not at every slot.
    """

    class Kind(models.TextChoices):
        MISSED = "missed"
        LATE = "late"
        LONG_RUNNING = "long_running"
        SCHEDULER_DOWN = "scheduler_down"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # None for the scheduler's own alerts (scheduler_down), which go to its admins.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    since = models.DateTimeField(help_text="The slot missed, the late slot, the run's start.")
    detail = models.TextField()
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # Two checkers (two workers' watchdogs) finding one condition open one alert.
            models.UniqueConstraint(
                "kind", Coalesce("job", Value(0)), condition=Q(resolved_at__isnull=True),
                name="alert_open_once",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["job", "-opened_at"], name="alert_job_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.job or 'scheduler'} since {self.since:%Y-%m-%dT%H:%M:%S}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Notification(models.Model):
    """One event to tell people about, a run's end or an alert: the outbox of notifications.

    Written in the transaction that ends the run (or opens the alert), then sent by
    ``workers.notify``; one still unsent long after (its message lost, its worker
    killed) is sent again by the sweep, a bounded number of times. Delivery is at
    least once.
    """

    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    event = models.CharField(max_length=16)
    due_at = models.DateTimeField(default=timezone.now)
    sends = models.PositiveSmallIntegerField(default=1, help_text="Times handed to a worker.")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "event"], name="notification_once_per_event"),
            models.UniqueConstraint(fields=["alert", "event"], name="notification_once_per_alert"),
        ]
        indexes = [models.Index(fields=["sent_at", "due_at"], name="notification_pending_idx")]

    def __str__(self) -> str:
        return (
            f"{f'alert {self.alert_id}' if self.alert_id else f'run {self.run_id}'}: {self.event}"
        )


class Team(models.Model):
    """People who share jobs, templates and calendars, each member with a role."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in a team; each role has the rights of those before it
    (scheduler_app/access.py holds what each allows)."""

    class Role(models.TextChoices):
        VIEWER = "viewer"  # read jobs, runs, logs
        OPERATOR = "operator"  # and run now, pause, resume, cancel
        EDITOR = "editor"  # and create, change, delete jobs, templates, calendars
        ADMIN = "admin"  # and manage the team's members

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_once_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class AuditEvent(models.Model):
    """Who did what to which object, when and from where (Zulip's RealmAuditLog).

    Written by scheduler_app/audit.py in the transaction of the change it records. Its
    references (actor, owner, job) are ids without a database constraint, and the
    actor's name and the object's label are copied: the history outlives the user, the
    job and the row it tells of.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        CHANGE = "change"
        DELETE = "delete"
        RUN = "run"
        PAUSE = "pause"
        RESUME = "resume"
        CANCEL = "cancel"
        EXPORT = "export"  # a row exported with its secrets (scheduler_app/porting)

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False,
        null=True, blank=True, related_name="+", help_text="None: the system (a command, a task).",
    )  # fmt: skip
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True, help_text="The client's.")
    via = models.CharField(max_length=8, blank=True, help_text="api, admin, or '' (code).")
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=32)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    job = models.ForeignKey(
        Job, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False,
        null=True, blank=True, related_name="+", help_text="The object's owner.",
    )  # fmt: skip
    team = models.ForeignKey(
        Team, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True,
        related_name="+", help_text="The object's team.",
    )  # fmt: skip
    changes = models.JSONField(
        default=list, blank=True, help_text='[{"field", "before", "after"}], secrets masked.'
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at"], name="audit_recent_idx"),
            models.Index(fields=["job", "-at"], name="audit_job_recent_idx"),
            models.Index(fields=["owner", "-at"], name="audit_owner_recent_idx"),
            models.Index(fields=["team", "-at"], name="audit_team_recent_idx"),
        ]

    def __str__(self) -> str:
        what = f"{self.action} {self.object_type} {self.object_label}"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {what}"


class Node(models.Model):
    """A worker, as it registered itself when it started (workers/fleet.py). Its state is
    read from its last sign of life (scheduler_app/nodes.py): shared infrastructure, seen
    by every user, changed by staff only."""

    name = models.CharField(max_length=255, unique=True)
    # The Celery worker's hostname ("w1@host"): its direct queue, and Run.worker / Run.node.
    hostname = models.CharField(max_length=255, unique=True)
    host = models.CharField(max_length=255, blank=True)
    address = models.CharField(max_length=255, blank=True)
    queues = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    version = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    # Its WORKER_PRESENCE_EVERY: a node is offline after missing three of its own writes.
    presence_every = models.PositiveIntegerField(default=5, help_text="Seconds.")
    draining = models.BooleanField(
        default=False, help_text="Finishes what it runs and takes nothing new."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NodeGroup(models.Model):
    """A named set of nodes: listed by name, or chosen by a label selector, or both."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    nodes = models.JSONField(default=list, blank=True, help_text="Node names.")
    selector = models.CharField(
        max_length=2000, blank=True, help_text='A label selector: "role=db,zone in (eu,us)".'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
