"""Admin pages for what ``file`` and ``software`` jobs deploy: uploaded files and the
software catalogue, under the rules of scheduler_app.access as the API applies them.

Files are uploaded through the API: here they are listed and shown, never added or
changed, and deleted only while no job uses them. Catalogue entries are edited as in
the API (same rules, and the code right to change any). On both, the jobs using a row
are named as far as the viewer may view them, the others only counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join

from scheduler_app import access, deployment
from scheduler_app.admin_access import AccessAdmin, OwnedForm
from scheduler_app.admin_pages import job_url
from scheduler_app.models import Job, Software, StoredFile
from scheduler_app.payloads import PayloadError

JOBS_SHOWN = 5  # jobs named in a row's "used by"; the rest are counted


class Usage:
    """The jobs using one row, split into those the viewer may view and a count of
    the others (whose names are not theirs to read)."""

    def __init__(self, jobs: list[Job], viewable: set[int]) -> None:
        self.shown = [job for job in jobs if job.pk in viewable]
        self.hidden = len(jobs) - len(self.shown)

    def html(self) -> str:
        """Links to the jobs shown; the rest counted, as the API's 409 counts them."""
        named = ((job_url(job.pk), job.name) for job in self.shown[:JOBS_SHOWN])
        parts = [format_html_join(", ", '<a href="{}">{}</a>', named)] if self.shown else []
        if len(self.shown) > JOBS_SHOWN:
            parts.append(f"{len(self.shown) - JOBS_SHOWN} more")
        if self.hidden:
            parts.append(f"{self.hidden} of others'")
        return format_html_join(", ", "{}", ([part] for part in parts)) if parts else "-"


class UsageAdmin(AccessAdmin):
    """Rows that jobs use: each row shown carries its Usage (``row.usage``), read for a
    whole list page at once; deleting one in use is refused with the reason."""

    # The jobs using each of some rows' ids (a staticmethod), and how a refusal names a row.
    jobs_by_id: Callable[[Iterable[int]], dict[int, list[Job]]]
    noun = ""

    def attach_usage(self, request: HttpRequest, rows: list[Model]) -> None:
        using = self.jobs_by_id([row.pk for row in rows])
        viewable = deployment.viewable_ids(request.user, [j for js in using.values() for j in js])
        for row in rows:
            row.usage = Usage(using.get(row.pk, []), viewable)  # type: ignore[attr-defined]

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        self.attach_usage(request, list(changelist.result_list))  # the rows the page shows
        return changelist

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        row = super().get_object(request, object_id, from_field)
        if row is not None:
            self.attach_usage(request, [row])
        return row

    @admin.display(description="used by")
    def used_by(self, row: Any) -> str:
        usage = getattr(row, "usage", None)
        return usage.html() if usage is not None else "-"

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A row that jobs use is protected, with the reason the API gives in its 409: the
        confirmation page names it and deletes nothing (one row or a bulk action)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        using = self.jobs_by_id([row.pk for row in objs])
        refusals = [deployment.in_use_refusal(request.user, f"{self.noun} {row.pk} ({row.name})",
                                              using[row.pk])
                    for row in objs if using.get(row.pk)]  # fmt: skip
        return deleted, counts, perms_needed, [*protected, *refusals]


@admin.register(StoredFile)
class StoredFileAdmin(UsageAdmin):
    jobs_by_id = staticmethod(deployment.jobs_using_files)
    noun = "file"
    list_display = ["name", "human_size", "short_sha256", "owner", "team", "created_at",
                    "used_by"]  # fmt: skip
    list_filter = [("team", admin.RelatedOnlyFieldListFilter)]  # only teams of rows shown
    search_fields = ["name", "sha256"]
    list_select_related = ["owner", "team"]
    date_hierarchy = "created_at"
    fields = ["name", "human_size", "sha256", "owner", "team", "created_at", "used_by"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploaded through the API (POST /api/v1/files/, `schedule files upload`)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its bytes are what jobs deployed: a new version is a new upload

    @admin.display(description="size", ordering="size")
    def human_size(self, row: StoredFile) -> str:
        return f"{filesizeformat(row.size)} ({row.size} bytes)"

    @admin.display(description="sha256", ordering="sha256")
    def short_sha256(self, row: StoredFile) -> str:
        return format_html('<span title="{}">{}</span>', row.sha256, row.sha256[:12])


class SoftwareForm(OwnedForm):
    """A catalogue entry, judged by the API's rules (deployment.SOFTWARE_RULES)."""

    noun = "software"

    class Meta:
        model = Software
        fields = ["owner", "team", "name", "description", "version", "install", "pip",
                  "check_command", "uninstall"]  # fmt: skip
        labels = {"check_command": "check"}
        help_texts = {
            "install": "A shell command that installs it (or give pip).",
            "pip": "A pip project name, installed at this version (or give install).",
            "check_command": "Prints the installed version.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not access.may_run_code(self.user):  # type: ignore[attr-defined]
            raise forms.ValidationError(deployment.CATALOGUE_RIGHT)
        for field, rule in deployment.SOFTWARE_RULES.items():
            name = "check_command" if field == "check" else field
            if name in data:
                try:
                    rule(data[name])
                except PayloadError as exc:
                    self.add_error(name, str(exc))
        if problem := deployment.install_problem(data.get("install", ""), data.get("pip", "")):
            self.add_error("install", problem)
        return data


@admin.register(Software)
class SoftwareAdmin(UsageAdmin):
    """The catalogue: those without the code right see it read only."""

    jobs_by_id = staticmethod(deployment.jobs_installing_each)
    noun = "software"
    form = SoftwareForm
    list_display = ["name", "version", "how", "owner", "team", "updated_at", "used_by"]
    list_filter = [("team", admin.RelatedOnlyFieldListFilter)]  # only teams of rows shown
    search_fields = ["name", "description", "pip"]
    list_select_related = ["owner", "team"]
    readonly_fields = ["used_by", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and access.may_run_code(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and access.may_run_code(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and access.may_run_code(request.user)

    @admin.display(description="installed by")
    def how(self, row: Software) -> str:
        return f"pip {row.pip}" if row.pip else "install command"
