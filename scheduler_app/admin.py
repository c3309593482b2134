"""The Django admin: jobs with their schedule, next run and recent runs; runs with output."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from scheduler_app import (
    access,
    admin_deploy,
    admin_fleet,
    admin_pages,
    audit,
    deployment,
    nodes,
    services,
    validation,
)
from scheduler_app.admin_access import AccessAdmin, OwnedForm, choices, rights_problems
from scheduler_app.admin_buttons import JOB_BUTTONS, RUN_BUTTONS, button_urls
from scheduler_app.admin_pages import STATUS_COLOURS, PageContext, status_badge
from scheduler_app.humanize import human_duration
from scheduler_app.models import (
    Alert,
    AuditEvent,
    Calendar,
    Job,
    JobDependency,
    JobTemplate,
    Run,
    RunTally,
)
from scheduler_app.payloads import KINDS, PayloadError

__all__ = ["admin_deploy", "admin_fleet"]  # their pages register with this module

AUDIT_SHOWN = 10  # events on a job's page; the rest are a link away
# The owner and team filters offer only the users and teams of rows the viewer may see:
# Django's plain related filter lists every user and team to any staff user.
OWNERS_SHOWN = admin.RelatedOnlyFieldListFilter

RUN_COLUMNS = [
    "trigger",
    "attempt",
    "colored_status",
    "scheduled_for",
    "started_at",
    "human_duration",
    "exit_code",
    "worker",
]


class ScheduleInput(forms.CharField):
    """A schedule as typed: a phrase or cron string, or a JSON object."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value)
        return value

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(f"not valid JSON: {exc}") from exc
        return value


class RuledInteger(forms.IntegerField):
    """A whole number whose range is validation.BOUNDS', judged in JobForm.clean.

    The model field's own range (0 and up) is dropped, so the rules' words apply.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("min_value", None)
        kwargs.pop("max_value", None)
        super().__init__(**kwargs)


class RuledText(forms.CharField):
    """Text whose length a rule judges (a queue name), so the rule's words apply."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        super().__init__(**kwargs)


class OptionalJSON(forms.JSONField):
    """JSON that may be left out (a window): an empty box, not the word "null"."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class SecondsOrAuto(forms.CharField):
    """A number of seconds or the word "auto", typed as it is (alert_if_longer)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs["widget"] = forms.TextInput(attrs={"size": 10})
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else str(value)

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value).strip()
        if not value:
            return None
        return int(value) if value.isdigit() else value  # the rule judges the rest


class SecretEnvInput(forms.JSONField):
    """Env variables whose secret values are write-only: shown as ***, and *** sent back
    keeps the stored value (JobForm.clean). A form shown again after an error masks
    them too: a secret is never written into the page."""

    masked = staticmethod(validation.mask_env)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return super().prepare_value(self.masked(value))


class SecretDefaultsInput(SecretEnvInput):
    """A template's defaults, the secrets of its env write-only."""

    masked = staticmethod(validation.mask_defaults)


class JobForm(forms.ModelForm):
    """The job's fields as typed; the rules are validation.clean_job's, the same as the API's."""

    kind = forms.CharField(
        initial=validation.DEFAULT_KIND, widget=forms.Select(choices=[(k, k) for k in KINDS])
    )
    schedule = ScheduleInput(
        widget=forms.TextInput(attrs={"size": 70}),
        help_text='e.g. "*/5 * * * *", "every 30 seconds", "daily at 10:30", or a JSON object '
        'such as {"type": "interval", "every": 5, "unit": "minutes"}.',
    )
    # A job made from a template (its "Create a job" action): where its secrets, shown
    # as ***, are kept until the job is saved. Only its id is ever in the page or a URL.
    from_template = forms.ModelChoiceField(
        JobTemplate.objects.all(), required=False, widget=forms.HiddenInput
    )

    class Meta:
        model = Job
        fields = ["owner", "team", *validation.JOB_FIELDS]
        field_classes = {
            **dict.fromkeys(validation.BOUNDS, RuledInteger),
            "queue": RuledText,
            "window": OptionalJSON,
            "targets": OptionalJSON,
            "alert_if_longer": SecondsOrAuto,
            "env": SecretEnvInput,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        stored = validation.values_of(self.instance) if self.instance.pk else None
        template = data.get("from_template")
        if template is not None and not access.can(self.user, "view", template):  # type: ignore[attr-defined]
            self.add_error("from_template", "not a template you may use.")
            template = None
        if stored is None and template is not None and "env" in data:
            data["env"] = validation.keep_secrets(data["env"], template.defaults.get("env"))
        try:
            data.update(validation.clean_job(data, stored))
        except validation.JobRulesError as exc:
            for field, messages in exc.errors.items():
                self.add_error(field, messages)
        self._check_references(data)
        if data.get("targets") and (unknown := nodes.unknown_names(data["targets"])):
            self.add_error("targets", unknown)
        rights_problems(self, data, "job")
        return data

    def _check_references(self, data: dict[str, Any]) -> None:
        """The files and packages a job names must be its owner's to use (as in the API)."""
        if "payload" in self.errors or "payload" not in data:
            return
        stored_owner = self.instance.owner if self.instance.pk else None
        owner = data.get("owner") or stored_owner or self.user  # type: ignore[attr-defined]
        kind = data.get("kind") or validation.DEFAULT_KIND
        try:
            data["payload"] = deployment.check_references(owner, kind, data["payload"])
        except PayloadError as exc:
            self.add_error("payload", str(exc))

    def _post_clean(self) -> None:
        # Next the model form runs Job.clean, the same rules: once clean() found one
        # broken, running them again would only repeat (or muddle) its messages.
        if not self.errors:
            super()._post_clean()


class RunColumns:
    @admin.display(description="status", ordering="status")
    def colored_status(self, run: Run) -> str:
        return status_badge(run.status)

    @admin.display(description="duration", ordering="duration")
    def human_duration(self, run: Run) -> str:
        return human_duration(run.duration)


class DependencyInline(admin.TabularInline):
    model = JobDependency
    fk_name = "job"
    extra = 0
    verbose_name_plural = "runs after (depends on)"
    autocomplete_fields = ["upstream"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any):  # type: ignore[no-untyped-def]
        if (rows := choices(db_field, request)) is not None:
            kwargs["queryset"] = rows
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class RecentRunInline(RunColumns, admin.TabularInline):
    """The job's latest runs (not all of them: a busy job has thousands)."""

    model = Run
    verbose_name_plural = "recent runs"
    fields = ["run_link", *RUN_COLUMNS]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    limit = 20

    def get_formset(self, request: HttpRequest, obj: Job | None = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        self._job = obj
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        runs = super().get_queryset(request)
        job = getattr(self, "_job", None)
        if job is None:
            return runs.none()
        recent = list(job.runs.values_list("id", flat=True)[: self.limit])
        return runs.filter(id__in=recent)

    @admin.display(description="run")
    def run_link(self, run: Run) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:scheduler_app_run_change", args=[run.id]), run.id
        )


@admin.register(Job)
class JobAdmin(PageContext, AccessAdmin):
    form = JobForm
    list_display = [
        "name",
        "schedule_text",
        "status_text",
        "next_run_at",
        "last_run_at",
        "last_status_badge",
        "run_counts",
        "queue",
    ]
    list_filter = ["enabled", "kind", "last_status", "queue", ("owner", OWNERS_SHOWN)]
    search_fields = ["name", "description", "payload"]
    readonly_fields = ["schedule_description", "status", *Job.REPORTED_FIELDS, "audit_log",
                       "recent_runs", "next_fires"]  # fmt: skip
    inlines = [DependencyInline, RecentRunInline]
    actions = ["pause", "resume", "run_now"]
    list_select_related = ["owner"]
    fieldsets = [
        ("At a glance", {"fields": ["recent_runs", "next_fires"]}),
        (None, {"fields": ["owner", "team", "name", "description", "tags", "enabled"]}),
        ("State", {"fields": ["status", "paused_reason", "from_template"]}),
        ("What", {"fields": ["kind", "payload", "env", "working_dir", "condition"]}),
        (
            "When",
            {
                "fields": [
                    "schedule",
                    "timezone",
                    "schedule_description",
                    "next_run_at",
                    ("start_at", "end_at"),
                    "window",
                    "jitter",
                    ("calendar", "calendar_policy"),
                    ("misfire_grace", "catchup"),
                ]
            },
        ),
        (
            "How",
            {
                "fields": [
                    ("timeout", "max_memory_mb", "max_cpu_seconds"),
                    ("max_retries", "retry_delay", "retry_backoff"),
                    ("concurrency_policy", "max_concurrent"),
                    ("queue", "priority"),
                    ("fan_out", "quorum"),
                    "targets",
                    ("target_mode", "max_parallel", "halt_on_failure"),
                ]
            },
        ),
        ("Notify", {"fields": ["notify_emails", "notify_webhooks", "notify_on"]}),
        (
            "Alert (told to the same recipients)",
            {"fields": [("alert_if_missed", "alert_if_late", "alert_if_longer")]},
        ),
        (
            "History",
            {
                "fields": [
                    "last_run_at",
                    "last_status",
                    "total_runs",
                    "failed_runs",
                    "created_at",
                    "updated_at",
                    "audit_log",
                ]
            },
        ),
    ]

    change_form_template = "scheduler_app/admin/job_change_form.html"

    class Media:
        css = {"all": ["scheduler_app/admin.css"]}

    def get_urls(self) -> list[Any]:
        return button_urls(self, JOB_BUTTONS) + super().get_urls()

    def page_context(self, request: HttpRequest, obj: Job) -> dict[str, Any]:
        return admin_pages.job_context(request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A job's runs and tallies go with it: no one deletes them on their own pages
        (RunAdmin, RunTallyAdmin), which must not forbid deleting the job."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        records = {str(model._meta.verbose_name) for model in (Run, RunTally)}
        return deleted, counts, perms_needed - records, protected

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        """A new job has no runs and no fires yet: no glance at them."""
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is not None else [f for f in fieldsets if f[0] != "At a glance"]

    @admin.display(description="recent runs")
    def recent_runs(self, job: Job) -> str:
        return admin_pages.run_strip(job) if job.pk else "-"

    @admin.display(description="next fires")
    def next_fires(self, job: Job) -> str:
        return admin_pages.next_fires(job) if job.pk else "-"

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new job from ``?template=<id>``: the template's defaults, read here (a URL
        carries only the id, never a value: secrets would land in the server's log)."""
        initial = super().get_changeform_initial_data(request)
        template_id, template = str(initial.pop("template", "")), None
        if template_id.isdigit():
            templates = access.visible(request.user, JobTemplate.objects.all())
            template = templates.filter(pk=template_id).first()
        if template is None:
            return initial
        return {"owner": request.user.pk, "name": f"{template.name} job",
                **template.defaults, "from_template": template.pk, **initial}  # fmt: skip

    @admin.display(description="audit log")
    def audit_log(self, job: Job) -> str:
        """The job's latest events (who, when, from where, what), and a link to them all."""
        if job.pk is None:
            return "-"
        url = reverse("admin:scheduler_app_auditevent_changelist") + f"?job__id__exact={job.pk}"
        events = audit.visible_to(audit.requesting_user()).filter(job_id=job.pk)[:AUDIT_SHOWN]
        rows = format_html_join(
            "", "<li>{} {} ({}, {}): {} {}</li>", (
                (f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor_name or "system", e.address or "-",
                 e.via or "code", e.action, json.dumps(e.changes)[:300])
                for e in events
            ),
        )  # fmt: skip
        link = format_html('<a href="{}">Every change and action on this job</a>', url)
        return format_html("<ul>{}</ul>{}", rows, link)

    @admin.display(description="runs (failed)")
    def run_counts(self, job: Job) -> str:
        return f"{job.total_runs} ({job.failed_runs})"

    @admin.display(description="schedule")
    def schedule_text(self, job: Job) -> str:
        return job.schedule_description

    @admin.display(description="status")
    def status_text(self, job: Job) -> str:
        return job.status

    @admin.display(description="last status", ordering="last_status")
    def last_status_badge(self, job: Job) -> str:
        return status_badge(job.last_status)

    @admin.action(description="Pause selected jobs")
    def pause(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Resume selected jobs")
    def resume(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Job], enabled: bool) -> None:
        jobs = self.allowed(request, queryset, "operate")
        for job in jobs:
            services.set_enabled(job, enabled)
        done = "Resumed" if enabled else "Paused"
        self.message_user(request, f"{done} {len(jobs)} jobs.", messages.SUCCESS)

    @admin.action(description="Run selected jobs now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        jobs = self.allowed(request, queryset, "operate")
        runs = [services.create_manual_run(job) for job in jobs]
        self.message_user(request, f"Queued {len(runs)} runs.", messages.SUCCESS)


@admin.register(Run)
class RunAdmin(RunColumns, PageContext, AccessAdmin):
    """Runs are the system's record: shown, never added, changed or deleted by hand; a
    run's page follows its output live and offers Cancel while it is pending."""

    access_via = "job__"
    # When it started is on its page: the list keeps room for the duration.
    list_display = ["id", "job", *(c for c in RUN_COLUMNS if c != "started_at")]
    list_filter = ["status", "trigger", "worker"]
    search_fields = ["job__name", "output", "error"]
    list_select_related = ["job"]
    date_hierarchy = "scheduled_for"
    readonly_fields = [field.name for field in Run._meta.fields]
    actions = ["cancel"]
    change_form_template = "scheduler_app/admin/run_change_form.html"

    class Media:
        css = {"all": ["scheduler_app/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return button_urls(self, RUN_BUTTONS) + super().get_urls()

    def page_context(self, request: HttpRequest, obj: Run) -> dict[str, Any]:
        return admin_pages.run_context(request, obj)

    @admin.action(description="Cancel selected runs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        runs = self.allowed(request, queryset, "operate")
        cancelled = sum(services.cancel_run(run) for run in runs)
        self.message_user(request, f"Cancelled {cancelled} runs.", messages.SUCCESS)


class OwnedAdmin(AccessAdmin):
    """Rows that belong to a user and are named (calendars, templates)."""

    form = OwnedForm
    search_fields = ["name", "description"]
    list_filter = [("owner", OWNERS_SHOWN), ("team", OWNERS_SHOWN)]


class JobTemplateForm(OwnedForm):
    """A template: its secrets write-only; one that would make jobs that run code needs
    the code right to define."""

    noun = "template"

    class Meta:
        model = JobTemplate
        fields = ["owner", "team", "name", "description", "defaults"]
        field_classes = {"defaults": SecretDefaultsInput}

    def clean_defaults(self) -> Any:
        defaults = self.cleaned_data["defaults"]
        if not isinstance(defaults, dict):
            raise forms.ValidationError("must be an object of job fields.")
        stored = self.instance.defaults if self.instance.pk else None
        try:
            return validation.clean_defaults_env(defaults, stored)
        except validation.JobRulesError as exc:
            raise forms.ValidationError(exc.errors["env"]) from exc

    def code_values(self) -> dict[str, Any]:
        values = self.cleaned_data.get("defaults")
        return values if isinstance(values, dict) else {}


@admin.register(Calendar)
class CalendarAdmin(OwnedAdmin):
    list_display = ["name", "owner", "date_count", "updated_at"]

    @admin.display(description="dates")
    def date_count(self, calendar: Calendar) -> int:
        return len(calendar.dates)


@admin.register(JobTemplate)
class JobTemplateAdmin(OwnedAdmin):
    form = JobTemplateForm
    list_display = ["name", "owner", "team", "description", "updated_at"]
    actions = ["new_job"]

    @admin.action(description="Create a job from the selected template")
    def new_job(self, request: HttpRequest, queryset: QuerySet[JobTemplate]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select one template.", messages.WARNING)
            return None
        template = queryset.get()
        if problem := access.code_refusal(request.user, template.defaults, "job"):
            self.message_user(request, problem, messages.ERROR)
            return None
        # Only the id: the form reads the defaults (JobAdmin.get_changeform_initial_data).
        url = reverse("admin:scheduler_app_job_add") + f"?template={template.pk}"
        return HttpResponseRedirect(url)


class ReadOnly:
    """For rows the system writes: listed and shown, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RunTally)
class RunTallyAdmin(ReadOnly, AccessAdmin):
    """What retention deleted, per job and status: read only, written by the prune."""

    access_via = "job__"
    list_display = ["job", "status", "count", "duration_count", "duration_sum", "duration_max"]
    list_filter = ["status"]
    search_fields = ["job__name"]
    list_select_related = ["job"]


@admin.register(Alert)
class AlertAdmin(AccessAdmin):
    """The dead-man's switch: read only, opened and resolved by the checks."""

    access_via = "job__"
    list_display = ["opened_at", "kind", "job", "since", "detail", "state"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["job__name", "detail"]
    list_select_related = ["job"]
    date_hierarchy = "opened_at"
    readonly_fields = [field.name for field in Alert._meta.fields]

    @admin.display(description="state", ordering="resolved_at")
    def state(self, alert: Alert) -> str:
        if alert.is_open:
            return format_html('<b style="color:{}">open</b>', STATUS_COLOURS[Run.Status.FAILED])
        return f"resolved {alert.resolved_at:%Y-%m-%d %H:%M:%S}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly, admin.ModelAdmin):
    """The audit log: read only, written by scheduler_app/audit.py."""

    list_display = ["at", "actor_name", "address", "via", "action", "object_type",
                    "object_label", "job_id"]  # fmt: skip
    list_filter = ["action", "object_type", "via"]
    search_fields = ["actor_name", "object_label"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return audit.visible_to(request.user)
