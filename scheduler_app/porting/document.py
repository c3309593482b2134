"""Our own document: the jobs, templates and calendars a user may see, as JSON or YAML.

``{"cronfleet": 1, "exported_at", "jobs", "templates", "calendars"}``. A job names
its calendar, team and upstream jobs (``depends_on``) by name, not id, so a file moves
between instances. Without secrets (the default, and for a row the caller may not
edit) every env value and webhook URL is written as ``***``: importing such a file
keeps the values a job of the same name already has, and leaves the others out with
a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rest_framework.request import Request

from scheduler_app import access, audit, validation
from scheduler_app.api.serializers import CalendarSerializer, JobSerializer
from scheduler_app.models import AuditEvent, Calendar, Job, JobTemplate
from scheduler_app.porting import safe_yaml
from scheduler_app.porting.items import CALENDAR, JOB, TEMPLATE, FileError, Item, check_count

VERSION = 1
MASK = validation.MASK
# A job's fields that are not written as the API shows them (ids become names).
BY_NAME = ("calendar", "team")
SECTIONS = (("calendars", CALENDAR), ("templates", TEMPLATE), ("jobs", JOB))


# --- export -----------------------------------------------------------------------


def masked_env(env: Any) -> Any:
    """Every value as ***, secret or not: only the names and which are secret remain."""
    if not isinstance(env, dict):
        return env
    return {
        name: {"value": MASK, "secret": bool(isinstance(item, dict) and item.get("secret"))}
        for name, item in env.items()
    }


def masked_fields(values: dict[str, Any]) -> dict[str, Any]:
    """A job's (or a template's defaults') fields with env values and webhook URLs as ***."""
    shown = dict(values)
    if "env" in shown:
        shown["env"] = masked_env(shown["env"])
    if isinstance(shown.get("notify_webhooks"), list):
        shown["notify_webhooks"] = [MASK for _ in shown["notify_webhooks"]]
    return shown


def job_entry(job: Job, request: Request, secrets: bool,
              rights: access.Rights | None = None) -> dict[str, Any]:  # fmt: skip
    """The job as the document holds it: its editable fields, references by name (only
    to rows the caller may see: a name is not told through someone's job). ``rights``:
    the caller's, read once for many jobs (else read here)."""
    rights = rights or access.rights_of(request.user)
    shown = JobSerializer(job, context={"request": request}).data
    entry = {name: shown[name] for name in validation.JOB_FIELDS}
    entry["env"] = job.env
    calendar = job.calendar if job.calendar_id else None
    entry["calendar"] = calendar.name if calendar and rights.can("view", calendar) else None
    entry["team"] = job.team.name if job.team_id else None
    upstreams = sorted(
        (dependency.upstream.name, dependency.on)
        for dependency in job.dependencies.all()
        if rights.can("view", dependency.upstream)
    )
    entry["depends_on"] = [{"job": name, "on": on} for name, on in upstreams]
    return entry if secrets else masked_fields(entry)


def template_entry(template: JobTemplate, secrets: bool) -> dict[str, Any]:
    defaults = template.defaults if secrets else masked_fields(template.defaults)
    return {
        "name": template.name,
        "description": template.description,
        "defaults": defaults,
        "team": template.team.name if template.team_id else None,
    }


def calendar_entry(calendar: Calendar, request: Request) -> dict[str, Any]:
    shown = CalendarSerializer(calendar, context={"request": request}).data
    return {
        "name": calendar.name,
        "description": calendar.description,
        "dates": shown["dates"],
        "team": calendar.team.name if calendar.team_id else None,
    }


def export(request: Request, job_ids: Iterable[int] = (), include_secrets: bool = False):
    """The document of what the caller may see (only the jobs ``job_ids`` when given, with
    the calendars they use); each row exported with its secrets is audited. A fixed
    number of queries, whatever the number of rows."""
    user = request.user
    rights = access.rights_of(user)
    jobs = access.viewable_jobs(user).select_related("calendar", "team", "owner")
    jobs = jobs.prefetch_related("dependencies__upstream")
    calendars = access.visible(user, Calendar.objects.select_related("team", "owner"))
    templates = access.visible(user, JobTemplate.objects.select_related("team"))
    ids = list(job_ids)
    if ids:
        jobs = jobs.filter(id__in=ids)
        calendars = calendars.filter(id__in=jobs.values("calendar_id"))
        templates = templates.none()
    document = {
        "cronfleet": VERSION,
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "jobs": [],
        "templates": [],
        "calendars": [calendar_entry(calendar, request) for calendar in calendars],
    }
    revealed: list[Job | JobTemplate] = []
    for job in jobs:
        secrets = include_secrets and rights.can("edit", job)
        document["jobs"].append(job_entry(job, request, secrets, rights))
        if secrets:
            revealed.append(job)
    for template in templates:
        secrets = include_secrets and rights.can("edit", template)
        document["templates"].append(template_entry(template, secrets))
        if secrets:
            revealed.append(template)
    audit_export(revealed)
    return document


def audit_export(rows: list[Job | JobTemplate]) -> None:
    audit.record_many(
        AuditEvent.Action.EXPORT,
        rows,
        [{"field": "secrets", "before": None, "after": "exported with its secret values"}],
    )


# --- import -----------------------------------------------------------------------


def read(text: str) -> list[Item]:
    """The items of a document: calendars, then templates, then jobs."""
    documents = safe_yaml.load_all(text)
    if len(documents) != 1:
        raise FileError(f"expected one cronfleet document; found {len(documents)}.")
    data, node = documents[0]
    if not isinstance(data, dict) or data.get("cronfleet") != VERSION:
        raise FileError(
            f'not a cronfleet document: expected a mapping with "cronfleet": {VERSION} '
            "(what GET /api/v1/export/ writes)."
        )
    items: list[Item] = []
    for key, kind in SECTIONS:
        entries = data.get(key) or []
        if not isinstance(entries, list):
            raise FileError(f'"{key}" must be a list.')
        check_count(len(items) + len(entries))
        lines = safe_yaml.item_lines(node, key)
        items.extend(_item(kind, entry, line) for entry, line in zip(entries, lines, strict=False))
    return items


def _item(kind: str, entry: Any, line: int | None) -> Item:
    if not isinstance(entry, dict):
        item = Item(line, f"{kind} {str(entry)[:60]}", "", type=kind)
        return item.refuse("non_field_errors", f"each {kind} must be a mapping of its fields.")
    name = entry.get("name")
    label = name if isinstance(name, str) else ""
    return Item(line, f"{kind} {label}", label, dict(entry), type=kind)
