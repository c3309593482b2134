"""Validation and representation of jobs, runs and schedule previews.

Every rule lives in one place that the admin form shares: the schedule in
:mod:`scheduler_app.schedules`, the payload in the kind's executor.
"""

from __future__ import annotations

import os
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler_app import schedules
from scheduler_app.dependencies import DependencyError, set_dependencies
from scheduler_app.models import Calendar, Job, JobDependency, JobTemplate, Run
from scheduler_app.notifications import EVENTS
from workers import executors
from workers.executors.base import allowed_path
from workers.executors.child import MASK

QUEUE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@extend_schema_field(OpenApiTypes.OBJECT)
class EnvField(serializers.JSONField):
    """Environment variables: {"NAME": "value"} or {"NAME": {"value": "...", "secret": true}}.

    Secret values are stored, passed to the job and masked as *** in its output;
    the API never shows them again.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError('must be an object such as {"NAME": "value"}.')
        for name, value in data.items():
            if not _ENV_NAME.match(name):
                raise serializers.ValidationError(f"{name!r} is not a valid variable name.")
            if isinstance(value, dict):
                if not isinstance(value.get("value"), str) or set(value) - {"value", "secret"}:
                    raise serializers.ValidationError(
                        f'{name}: use a string, or {{"value": "...", "secret": true}}.'
                    )
            elif not isinstance(value, str):
                raise serializers.ValidationError(f"{name}: Not a valid string.")
        return data

    def to_representation(self, value: Any) -> Any:
        return {
            name: {"value": MASK, "secret": True}
            if isinstance(item, dict) and item.get("secret")
            else item
            for name, item in (value or {}).items()
        }


@extend_schema_field(OpenApiTypes.ANY)
class ScheduleField(serializers.JSONField):
    """A schedule string ("*/5 * * * *", "every 30 seconds") or object ({"type": ...})."""


def validate_timezone(value: str) -> str:
    try:
        schedules.get_zone(value)
    except schedules.ScheduleError as exc:
        raise serializers.ValidationError(str(exc)) from exc
    return value


def normalize_schedule(value: Any, zone_name: str) -> dict[str, Any]:
    try:
        return schedules.normalize(value, schedules.get_zone(zone_name), timezone.now())
    except schedules.ScheduleError as exc:
        raise serializers.ValidationError({"schedule": [str(exc)]}) from exc


def validate_payload(kind: str, payload: Any) -> dict[str, Any]:
    try:
        executor = executors.for_kind(kind)
    except executors.PayloadError as exc:
        raise serializers.ValidationError({"kind": [str(exc)]}) from exc
    try:
        return executor.validate(payload)
    except executors.PayloadError as exc:
        raise serializers.ValidationError({"payload": [str(exc)]}) from exc


class DependencySerializer(serializers.Serializer):
    job = serializers.PrimaryKeyRelatedField(queryset=Job.objects.all())
    on = serializers.ChoiceField(JobDependency.On.choices, default=JobDependency.On.SUCCESS)

    def validate_job(self, value: Job) -> Job:
        user = self.context["request"].user
        if value.owner_id != user.id and not user.is_staff:
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        return value

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {"job": instance.upstream_id, "on": instance.on}


class OwnedSerializer(serializers.ModelSerializer):
    """A row owned by the requesting user, its name unique among that owner's rows."""

    noun = "object"

    def validate_name(self, value: str) -> str:
        owner = self.instance.owner if self.instance else self.context["request"].user
        clash = self.Meta.model.objects.filter(owner=owner, name=value)
        if self.instance:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"you already have a {self.noun} named {value!r}.")
        return value

    def create(self, validated_data: dict[str, Any]) -> Any:
        validated_data["owner"] = self.context["request"].user
        return super().create(validated_data)


class JobSerializer(OwnedSerializer):
    noun = "job"
    owner = serializers.CharField(source="owner.username", read_only=True)
    schedule = ScheduleField()
    timezone = serializers.CharField(default="UTC", validators=[validate_timezone])
    status = serializers.CharField(read_only=True)
    schedule_description = serializers.CharField(read_only=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), default=list)
    env = EnvField(default=dict)
    depends_on = DependencySerializer(many=True, source="dependencies", required=False)
    max_memory_mb = serializers.IntegerField(
        min_value=16, max_value=1024 * 1024, allow_null=True, required=False
    )
    max_cpu_seconds = serializers.IntegerField(
        min_value=1, max_value=7 * 86400, allow_null=True, required=False
    )
    timeout = serializers.IntegerField(
        min_value=1, max_value=settings.SCHEDULER_MAX_TIMEOUT, allow_null=True, required=False
    )
    max_retries = serializers.IntegerField(min_value=0, max_value=100, default=0)
    retry_delay = serializers.IntegerField(min_value=0, max_value=86400, default=0)
    priority = serializers.IntegerField(min_value=0, max_value=9, default=5)
    notify_emails = serializers.ListField(
        child=serializers.EmailField(), default=list, max_length=50
    )
    notify_webhooks = serializers.ListField(
        child=serializers.URLField(), default=list, max_length=20
    )
    notify_on = serializers.ListField(child=serializers.ChoiceField(EVENTS), default=["failure"])
    max_concurrent = serializers.IntegerField(
        min_value=1, max_value=1000, allow_null=True, required=False
    )
    jitter = serializers.IntegerField(min_value=0, max_value=86400, default=0)
    misfire_grace = serializers.IntegerField(min_value=0, max_value=30 * 86400, default=60)
    window = serializers.JSONField(required=False, allow_null=True)
    calendar = serializers.PrimaryKeyRelatedField(
        queryset=Calendar.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "description",
            "tags",
            "kind",
            "payload",
            "schedule",
            "timezone",
            "enabled",
            "status",
            "timeout",
            "max_memory_mb",
            "max_cpu_seconds",
            "max_retries",
            "retry_delay",
            "retry_backoff",
            "start_at",
            "end_at",
            "window",
            "jitter",
            "calendar",
            "calendar_policy",
            "misfire_grace",
            "catchup",
            "concurrency_policy",
            "max_concurrent",
            "fan_out",
            "quorum",
            "priority",
            "queue",
            "env",
            "working_dir",
            "condition",
            "depends_on",
            "notify_emails",
            "notify_webhooks",
            "notify_on",
            "owner",
            "schedule_description",
            "next_run_at",
            "last_run_at",
            "last_status",
            "total_runs",
            "failed_runs",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "next_run_at",
            "last_run_at",
            "last_status",
            "total_runs",
            "failed_runs",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"payload": {"required": True}}
        # Uniqueness per owner is checked in validate_name, with a clearer message.
        validators: list[Any] = []

    def validate_queue(self, value: str) -> str:
        if not QUEUE_RE.match(value):
            raise serializers.ValidationError(
                "must be 1-64 letters, digits, '_', '-' or '.', the name of a worker queue."
            )
        return value

    def create(self, validated_data: dict[str, Any]) -> Job:
        depends_on = validated_data.pop("dependencies", [])
        with transaction.atomic():
            job = super().create(validated_data)
            self._set_dependencies(job, depends_on)
        return job

    def update(self, instance: Job, validated_data: dict[str, Any]) -> Job:
        depends_on = validated_data.pop("dependencies", None)
        with transaction.atomic():
            job = super().update(instance, validated_data)
            if depends_on is not None:
                self._set_dependencies(job, depends_on)
        return job

    def _set_dependencies(self, job: Job, specs: list[dict[str, Any]]) -> None:
        try:
            set_dependencies(job, specs)
        except DependencyError as exc:
            raise serializers.ValidationError({"depends_on": [str(exc)]}) from exc

    def validate_env(self, value: dict[str, Any]) -> dict[str, Any]:
        """A secret sent back as *** (as the API showed it) keeps its stored value."""
        stored = (self.instance.env or {}) if self.instance else {}
        for name, item in value.items():
            if isinstance(item, dict) and item.get("value") == MASK and name in stored:
                value[name] = stored[name]
        return value

    def validate_calendar(self, value: Calendar | None) -> Calendar | None:
        user = self.context["request"].user
        if value is not None and value.owner_id != user.id and not user.is_staff:
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        return value

    def validate_window(self, value: Any) -> Any:
        try:
            return schedules.normalize_window(value)
        except schedules.ScheduleError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_working_dir(self, value: str) -> str:
        if not value:
            return value
        if not os.path.isabs(value):
            raise serializers.ValidationError("must be an absolute path.")
        try:
            return allowed_path(value)
        except executors.PayloadError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Job | None = self.instance
        errors: dict[str, Any] = {}
        if "schedule" in attrs or "timezone" in attrs:
            zone = attrs.get("timezone", instance.timezone if instance else "UTC")
            raw = attrs.get("schedule", instance.schedule if instance else None)
            try:
                attrs["schedule"] = normalize_schedule(raw, zone)
            except serializers.ValidationError as exc:
                errors.update(exc.detail)
        if "payload" in attrs or "kind" in attrs:
            kind = attrs.get("kind", instance.kind if instance else Job.Kind.COMMAND)
            payload = attrs.get("payload", instance.payload if instance else None)
            try:
                attrs["payload"] = validate_payload(kind, payload)
            except serializers.ValidationError as exc:
                errors.update(exc.detail)
        start = attrs.get("start_at", instance.start_at if instance else None)
        end = attrs.get("end_at", instance.end_at if instance else None)
        if start and end and end <= start:
            errors["end_at"] = ["must be later than start_at."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class RunSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "job",
            "job_name",
            "trigger",
            "attempt",
            "status",
            "scheduled_for",
            "queued_at",
            "started_at",
            "finished_at",
            "duration",
            "exit_code",
            "worker",
            "output",
            "error",
            "result",
            "parent",
            "node",
        ]
        read_only_fields = fields


class RunLogSerializer(serializers.ModelSerializer):
    """The output from ``offset`` on; ``next_offset`` is where the next read starts."""

    finished = serializers.BooleanField(source="is_finished", read_only=True)
    output = serializers.SerializerMethodField()
    offset = serializers.SerializerMethodField()
    next_offset = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "status", "finished", "offset", "next_offset", "output"]
        read_only_fields = fields

    def get_offset(self, run: Run) -> int:
        offset = self.context.get("offset", 0)
        # Past the end means the stored output was cut and shrank: read it again whole.
        return offset if offset <= len(run.output) else 0

    def get_output(self, run: Run) -> str:
        return run.output[self.get_offset(run) :]

    def get_next_offset(self, run: Run) -> int:
        return len(run.output)


class LogQuerySerializer(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, default=0)


class PreviewSerializer(serializers.Serializer):
    schedule = ScheduleField()
    timezone = serializers.CharField(default="UTC", validators=[validate_timezone])
    count = serializers.IntegerField(min_value=1, max_value=100, default=5)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    window = serializers.JSONField(required=False, allow_null=True)
    jitter = serializers.IntegerField(min_value=0, max_value=86400, default=0)
    calendar = serializers.PrimaryKeyRelatedField(
        queryset=Calendar.objects.all(), required=False, allow_null=True
    )
    calendar_policy = serializers.ChoiceField(Job.CalendarPolicy.choices, default="skip")

    validate_window = JobSerializer.validate_window
    validate_calendar = JobSerializer.validate_calendar

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["schedule"] = normalize_schedule(attrs["schedule"], attrs["timezone"])
        if attrs.get("start_at") and attrs.get("end_at") and attrs["end_at"] <= attrs["start_at"]:
            raise serializers.ValidationError({"end_at": ["must be later than start_at."]})
        return attrs


class CalendarSerializer(OwnedSerializer):
    noun = "calendar"
    owner = serializers.CharField(source="owner.username", read_only=True)
    dates = serializers.ListField(child=serializers.DateField(), allow_empty=True, max_length=5000)

    class Meta:
        model = Calendar
        fields = ["id", "name", "description", "dates", "owner", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    def validate_dates(self, value: list[Any]) -> list[str]:
        return sorted({day.isoformat() for day in value})


class NextRunsQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=100, default=5)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


TEMPLATE_FIELDS = frozenset(JobSerializer.Meta.fields) - {
    "id",
    "name",
    "owner",
    "status",
    "schedule_description",
    *JobSerializer.Meta.read_only_fields,
}


class JobTemplateSerializer(OwnedSerializer):
    """Defaults for any job field; each is checked when a job is made from the template."""

    noun = "template"
    owner = serializers.CharField(source="owner.username", read_only=True)
    defaults = serializers.JSONField()

    class Meta:
        model = JobTemplate
        fields = ["id", "name", "description", "defaults", "owner", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    def validate_defaults(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object of job fields.")
        unknown = sorted(set(value) - TEMPLATE_FIELDS)
        if unknown:
            raise serializers.ValidationError(
                f"not job fields a template can set: {', '.join(unknown)}."
            )
        return value
