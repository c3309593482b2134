"""Representation of jobs, runs and schedule previews, and reading them from JSON.

The job rules are :mod:`scheduler_app.validation`'s, the same ones the admin and
``Job.clean`` apply; the fields here read JSON's types and describe the schema.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

from django.db import models, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from scheduler_app import access, deployment, nodes, validation
from scheduler_app.api.rows import PlainListSerializer
from scheduler_app.dependencies import DependencyError, set_dependencies
from scheduler_app.models import Alert, Calendar, Job, JobDependency, JobTemplate, Run, Team
from scheduler_app.payloads import KINDS, PayloadError


@extend_schema_field(OpenApiTypes.OBJECT)
class EnvField(serializers.JSONField):
    """Environment variables: {"NAME": "value"} or {"NAME": {"value": "...", "secret": true}}.

    Secret values are stored encrypted, passed to the job and masked as *** in its
    output; the API never shows them again (write-only: *** sent back keeps the value).
    """

    def to_representation(self, value: Any) -> Any:
        return validation.mask_env(value or {})


@extend_schema_field(OpenApiTypes.ANY)
class ScheduleField(serializers.JSONField):
    """A schedule string ("*/5 * * * *", "every 30 seconds") or object ({"type": ...})."""


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class StringListField(serializers.JSONField):
    """A list of strings (tags, e-mail addresses, URLs, events)."""


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 30 * validation.DAY},
               {"type": "string", "enum": [validation.AUTO]}], "nullable": True}
)  # fmt: skip
class SecondsOrAutoField(serializers.JSONField):
    """Seconds, or "auto" (a factor over the job's usual duration), or null."""


@extend_schema_field(
    {"type": "object", "nullable": True, "properties": {
        "nodes": {"type": "array", "items": {"type": "string"}},
        "groups": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "string"}}}
)  # fmt: skip
class TargetsField(serializers.JSONField):
    """The nodes a job runs on: {"nodes": [names], "groups": [names], "labels": "role=db"}."""


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would take the number 0 as "0",
    where the schema says ``type: string``."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def from_json(field: serializers.Field) -> bool:
    """Whether the field reads a request's JSON body, whose types the schema states; a
    form (the browsable API's) has only strings, read as DRF reads them, and values
    given in code (no request) are as typed as the code makes them."""
    request = field.context.get("request") if hasattr(field, "parent") else None
    content_type = getattr(request, "content_type", "") or ""
    return content_type.startswith("application/json")


class StrictJSONTypes:
    """In a JSON body, the JSON type the schema says and no other: "5" is not 5, nor
    "true" or 1 true (DRF would take both)."""

    json_types: tuple[type, ...] = ()
    json_type_message = "Not a valid value."

    def to_internal_value(self, data: Any) -> Any:
        wrong = isinstance(data, bool) != (bool in self.json_types) or not isinstance(
            data, self.json_types
        )
        if wrong and from_json(self):  # type: ignore[arg-type]
            raise serializers.ValidationError(self.json_type_message, code="invalid")
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictIntegerField(StrictJSONTypes, serializers.IntegerField):
    json_types = (int, float)  # 5.0 is an integer to JSON Schema; 5.5 DRF refuses
    json_type_message = "A valid integer is required."


class StrictBooleanField(StrictJSONTypes, serializers.BooleanField):
    json_types = (bool,)
    json_type_message = "Must be true or false."


class StrictPrimaryKeyField(StrictJSONTypes, serializers.PrimaryKeyRelatedField):
    json_types = (int,)
    json_type_message = "Incorrect type. Expected pk value (a whole number)."


@extend_schema_field({"type": "string", "enum": list(KINDS)})
class KindField(StrictCharField):
    """A job kind: one of scheduler_app.payloads.KINDS."""


class RuledInteger(StrictIntegerField):
    """An integer, not required, whose range validation.BOUNDS holds and clean_job checks.

    The range is set when the field is bound, for the schema only: given to the
    constructor, DRF would check it first, in other words than the admin's.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"required": False, **kwargs})

    def bind(self, field_name: str, parent: Any) -> None:
        super().bind(field_name, parent)
        bound = validation.BOUNDS[field_name]
        self.min_value, self.max_value = bound.low, bound.top


def judged(values: dict[str, Any], stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """validation.clean_job, its JobRulesError as a 400 with the same field -> messages."""
    try:
        return validation.clean_job(values, stored)
    except validation.JobRulesError as exc:
        raise serializers.ValidationError(exc.errors) from exc


# What a page's query annotates (the names it shows) instead of reading the rows they
# come from: a page of runs its jobs' names, a page of jobs their owners'.
LISTED_JOB_NAME = "listed_job_name"
LISTED_OWNER = "listed_owner"


class ListedNameField(serializers.CharField):
    """A name from a related row (``source``): the page's annotation (``listed``) when
    its query had one, else read from the row."""

    def __init__(self, listed: str, **kwargs: Any) -> None:
        self.listed = listed
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        named = getattr(instance, self.listed, None)
        return named if named is not None else super().get_attribute(instance)


# The attribute a page of jobs holds its dependencies in (attach_dependencies).
PAGE_DEPENDENCIES = "page_dependencies"


class Dependency(NamedTuple):
    """A dependency as depends_on shows it."""

    upstream_id: int
    on: str


def attach_dependencies(jobs: list[Job]) -> None:
    """Each job's dependencies, as plain rows, from one query for the page: Django's
    prefetch made a queryset per job and an object per dependency (2 ms a page)."""
    found = defaultdict(list)
    rows = JobDependency.objects.filter(job_id__in=[job.id for job in jobs])
    for job_id, upstream_id, on in rows.values_list("job_id", "upstream_id", "on"):
        found[job_id].append(Dependency(upstream_id, on))
    for job in jobs:
        setattr(job, PAGE_DEPENDENCIES, found[job.id])


class DependencyListSerializer(serializers.ListSerializer):
    """A job's dependencies: the list its page prefetched, else its manager's."""

    def get_attribute(self, instance: Any) -> Any:
        prefetched = getattr(instance, PAGE_DEPENDENCIES, None)
        return prefetched if prefetched is not None else super().get_attribute(instance)


class DependencySerializer(serializers.Serializer):
    job = StrictPrimaryKeyField(queryset=Job.objects.all())
    on = serializers.ChoiceField(JobDependency.On.choices, default=JobDependency.On.SUCCESS)

    class Meta:
        list_serializer_class = DependencyListSerializer

    def validate_job(self, value: Job) -> Job:
        if not access.can(self.context["request"].user, "view", value):
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        return value

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {"job": instance.upstream_id, "on": instance.on}


class OwnedSerializer(serializers.ModelSerializer):
    """A row owned by the requesting user, its name unique among that owner's rows."""

    noun = "object"
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.BooleanField: StrictBooleanField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.SmallIntegerField: StrictIntegerField,
    }

    team = StrictPrimaryKeyField(
        queryset=Team.objects.all(), required=False, allow_null=True,
        help_text="The team that shares it: its members have their role's rights.",
    )  # fmt: skip

    def validate_team(self, value: Team | None) -> Team | None:
        """A team the caller cannot see does not exist; one they may not put rows in
        (or take this one out of) is a 403 that says which role it needs."""
        user = self.context["request"].user
        if value is not None and not access.can(user, "view", value):
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        if problem := access.team_refusal(user, self.instance, value):
            raise PermissionDenied(problem)
        return value

    def refuse_code(self, values: dict[str, Any], noun: str) -> None:
        """403 when the values run code and the caller lacks the code right."""
        if problem := access.code_refusal(self.context["request"].user, values, noun):
            raise PermissionDenied(problem)

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
    owner = ListedNameField(LISTED_OWNER, source="owner.username")
    kind = KindField(required=False)
    schedule = ScheduleField()
    timezone = StrictCharField(required=False)
    status = serializers.CharField(read_only=True)
    schedule_description = serializers.CharField(read_only=True)
    tags = StringListField(required=False)
    env = EnvField(required=False)
    depends_on = DependencySerializer(many=True, source="dependencies", required=False)
    timeout = RuledInteger(allow_null=True)
    max_memory_mb = RuledInteger(allow_null=True)
    max_cpu_seconds = RuledInteger(allow_null=True)
    max_retries = RuledInteger()
    retry_delay = RuledInteger()
    priority = RuledInteger()
    max_concurrent = RuledInteger(allow_null=True)
    quorum = RuledInteger(allow_null=True)
    targets = TargetsField(required=False, allow_null=True)
    max_parallel = RuledInteger(allow_null=True)
    jitter = RuledInteger()
    misfire_grace = RuledInteger()
    alert_if_missed = RuledInteger(allow_null=True)
    alert_if_late = RuledInteger(allow_null=True)
    alert_if_longer = SecondsOrAutoField(required=False, allow_null=True)
    queue = StrictCharField(required=False)
    notify_emails = StringListField(required=False)
    notify_webhooks = StringListField(required=False)
    notify_on = StringListField(required=False)
    window = serializers.JSONField(required=False, allow_null=True)
    calendar = StrictPrimaryKeyField(
        queryset=Calendar.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Job
        read_only_fields = list(Job.REPORTED_FIELDS)
        fields = [
            "id",
            *validation.JOB_FIELDS,
            "team",
            "depends_on",
            "status",
            "owner",
            "schedule_description",
            *read_only_fields,
        ]
        extra_kwargs = {"payload": {"required": True}}
        list_serializer_class = PlainListSerializer
        # Uniqueness per owner is checked in validate_name, with a clearer message.
        validators: list[Any] = []

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

    def validate_calendar(self, value: Calendar | None) -> Calendar | None:
        user = self.context["request"].user
        if value is not None and not access.can(user, "view", value):
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The job rules, on the values given over the stored ones (for an update)."""
        stored = validation.values_of(self.instance) if self.instance else None
        values = judged({**(stored or {}), **attrs}, stored)
        if attrs.get("targets") and (unknown := nodes.unknown_names(values["targets"])):
            raise serializers.ValidationError({"targets": unknown})
        self.refuse_code(values, "job")
        owner = self.instance.owner if self.instance else self.context["request"].user
        kind = values.get("kind") or validation.DEFAULT_KIND
        try:
            if "payload" in values:
                values["payload"] = deployment.check_references(owner, kind, values["payload"])
        except PayloadError as exc:
            raise serializers.ValidationError({"payload": [str(exc)]}) from exc
        return {name: values[name] for name in attrs}


class RunSerializer(serializers.ModelSerializer):
    job_name = ListedNameField(LISTED_JOB_NAME, source="job.name")

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
            "due_at",
            "heartbeat_at",
            "pid",
        ]
        read_only_fields = fields
        list_serializer_class = PlainListSerializer


class AlertSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True, default=None)
    open = serializers.BooleanField(source="is_open", read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "kind", "job", "job_name", "run", "since", "detail", "opened_at",
                  "resolved_at", "open"]  # fmt: skip
        read_only_fields = fields
        list_serializer_class = PlainListSerializer


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
    offset = serializers.IntegerField(
        min_value=0, default=0, help_text="Characters already read: the last answer's next_offset."
    )


class PreviewSerializer(serializers.Serializer):
    """A schedule and its timing fields, judged by the same rules as a job's."""

    schedule = ScheduleField()
    timezone = StrictCharField(default=validation.DEFAULT_TIMEZONE)
    count = StrictIntegerField(min_value=1, max_value=100, default=5)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    window = serializers.JSONField(required=False, allow_null=True)
    jitter = RuledInteger(default=0)
    calendar = StrictPrimaryKeyField(
        queryset=Calendar.objects.all(), required=False, allow_null=True
    )
    calendar_policy = serializers.ChoiceField(Job.CalendarPolicy.choices, default="skip")

    validate_calendar = JobSerializer.validate_calendar

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return judged(attrs)


class CalendarSerializer(OwnedSerializer):
    noun = "calendar"
    owner = serializers.CharField(source="owner.username", read_only=True)
    dates = serializers.ListField(child=serializers.DateField(), allow_empty=True, max_length=5000)

    class Meta:
        model = Calendar
        fields = ["id", "name", "description", "dates", "team", "owner", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    def validate_dates(self, value: list[Any]) -> list[str]:
        return sorted({day.isoformat() for day in value})


class NextRunsQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(
        min_value=1, max_value=100, default=5, help_text="How many fire times, 1-100."
    )


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class DefaultsField(serializers.JSONField):
    """A template's job fields; the secrets of its env are write-only, as a job's."""

    def to_representation(self, value: Any) -> Any:
        return super().to_representation(validation.mask_defaults(value))


# A template sets any of a job's fields but its name.
TEMPLATE_FIELDS = frozenset(validation.JOB_FIELDS) - {"name"} | {"depends_on"}


class JobTemplateSerializer(OwnedSerializer):
    """Defaults for any job field; each is checked when a job is made from the template."""

    noun = "template"
    owner = serializers.CharField(source="owner.username", read_only=True)
    defaults = DefaultsField()

    class Meta:
        model = JobTemplate
        fields = ["id", "name", "description", "defaults", "team", "owner", "created_at",
                  "updated_at"]  # fmt: skip
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
        if problem := validation.nul_problem(value):  # stored before the job rules judge it
            raise serializers.ValidationError(problem)
        stored = self.instance.defaults if self.instance else None
        try:
            return validation.clean_defaults_env(value, stored)
        except validation.JobRulesError as exc:
            raise serializers.ValidationError(exc.errors) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A template that would make jobs that run code needs the code right to define."""
        stored = self.instance.defaults if self.instance else {}
        self.refuse_code(attrs.get("defaults", stored), "template")
        return attrs
