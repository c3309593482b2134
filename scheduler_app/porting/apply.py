"""Judging and writing imported items: the API's serializers and access rules, in one
transaction.

Every item is judged by the serializer the API uses for its kind of row (so the job
rules, the code right and the team rules are the API's) in the importer's own
namespace: an item named like a job of theirs updates it (``on_conflict="update"``)
or leaves it (``"skip"``); a job of the same name owned by someone else is never
touched, the importer gets a new one. Each item is written in a savepoint, so one
refused does not stop the others; a dry run is the same import, rolled back whole,
so what it reports is what the import would do. The audit log records each row
created or changed (its model's signals), as for any API write.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Model
from rest_framework import exceptions, serializers
from rest_framework.request import Request

from scheduler_app import access, schedules
from scheduler_app.api.serializers import (
    CalendarSerializer,
    JobSerializer,
    JobTemplateSerializer,
)
from scheduler_app.dependencies import DependencyError, set_dependencies
from scheduler_app.models import Calendar, Job, JobTemplate
from scheduler_app.porting import document
from scheduler_app.porting.items import CALENDAR, JOB, TEMPLATE, Item

CREATE, UPDATE, UNCHANGED, REFUSED = "create", "update", "unchanged", "refused"
PREVIEW_COUNT = 3
MODELS: dict[str, type[Model]] = {JOB: Job, TEMPLATE: JobTemplate, CALENDAR: Calendar}


class Refused(Exception):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


class Unchanged(Exception):
    """Raised inside an item's savepoint to undo a save that changed nothing."""


@dataclass
class Report:
    item: Item
    action: str = REFUSED
    schedule: str | None = None
    next_runs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        item = self.item
        return {
            "line": item.line,
            "type": item.type,
            "source": item.source,
            "name": item.name,
            "action": self.action,
            "schedule": self.schedule,
            "next_runs": list(self.next_runs),
            "errors": item.errors if self.action == REFUSED else None,
            "warnings": item.warnings,
        }


def run(items: list[Item], request: Request, *, dry_run: bool, on_conflict: str) -> list[Report]:
    """Import ``items`` (all their writes, or none if a dry run); a report per item."""
    with transaction.atomic():
        reports = Importer(request, on_conflict).apply(items)
        if dry_run:
            transaction.set_rollback(True)
    return reports


def summary(reports: list[Report]) -> dict[str, int]:
    counts = dict.fromkeys((CREATE, UPDATE, UNCHANGED, REFUSED), 0)
    for report in reports:
        counts[report.action] += 1
    return counts


class Importer:
    def __init__(self, request: Request, on_conflict: str) -> None:
        self.request = request
        self.user = request.user
        self.on_conflict = on_conflict
        self.saved: dict[str, dict[str, Model]] = {JOB: {}, TEMPLATE: {}, CALENDAR: {}}

    def apply(self, items: list[Item]) -> list[Report]:
        reports = {id(item): Report(item) for item in items}
        self._refuse_doubles(items)
        ordered = [i for kind in (CALENDAR, TEMPLATE) for i in items if i.type == kind]
        for item in [*ordered, *self._jobs_in_order(items)]:
            if item.errors is None:
                self._apply_one(item, reports[id(item)])
        return [reports[id(item)] for item in items]

    # --- order and doubles ------------------------------------------------------

    def _refuse_doubles(self, items: list[Item]) -> None:
        first: dict[tuple[str, str], Item] = {}
        for item in items:
            if item.errors is not None or not item.name:
                continue
            earlier = first.setdefault((item.type, item.name), item)
            if earlier is not item:
                where = f" (line {earlier.line})" if earlier.line is not None else ""
                item.refuse("name", f"the file names another {item.type} {item.name!r}{where}.")

    def _jobs_in_order(self, items: list[Item]) -> list[Item]:
        """The jobs, each after the jobs of the file it depends on; those in a cycle
        refused (one cycle at a time, until none is left)."""
        jobs = [item for item in items if item.type == JOB]
        while True:
            named = {item.name: item for item in jobs if item.errors is None}
            sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
            for item in named.values():
                sorter.add(item.name, *(n for n in upstream_names(item) if n in named))
            try:
                order = list(sorter.static_order())
            except graphlib.CycleError as exc:
                cycle = exc.args[1]
                for name in set(cycle):
                    named[name].refuse("depends_on", "a cycle: " + " -> ".join(cycle) + ".")
                continue
            return [named[name] for name in order] + [i for i in jobs if i.errors is not None]

    # --- one item -----------------------------------------------------------------

    def _apply_one(self, item: Item, report: Report) -> None:
        model = MODELS[item.type]
        existing = model.objects.filter(owner=self.user, name=item.name).first()
        if existing is not None and self.on_conflict == "skip":
            item.warnings.append(
                f"you already have a {item.type} named {item.name!r}: left as it is "
                "(on_conflict=skip)."
            )
            report.action = UNCHANGED
            self._describe(existing, report)
            self.saved[item.type][item.name] = existing
            return
        before = self._snapshot(existing) if existing is not None else None
        try:
            with transaction.atomic():
                row = self._write(item, existing)
                report.action = UPDATE if existing is not None else CREATE
                self._describe(row, report)
                if before is not None and before == self._snapshot(row):
                    raise Unchanged
        except Unchanged:
            report.action = UNCHANGED
            row = model.objects.get(pk=existing.pk)
        except Refused as exc:
            item.errors = exc.errors
            report.action, report.schedule, report.next_runs = REFUSED, None, ()
            return
        self.saved[item.type][item.name] = row

    def _write(self, item: Item, existing: Model | None) -> Model:
        if existing is not None and not access.can(self.user, "edit", existing):
            raise Refused({"detail": [access.refusal(self.user, "edit", existing)]})
        writers: dict[str, Callable[[Item, Any], Model]] = {
            JOB: self._write_job, TEMPLATE: self._write_template, CALENDAR: self._write_calendar,
        }  # fmt: skip
        return writers[item.type](item, existing)

    def _save(self, serializer_class: type[serializers.Serializer], existing: Any,
              data: dict[str, Any]) -> Model:  # fmt: skip
        serializer = serializer_class(
            existing, data=data, partial=existing is not None, context={"request": self.request}
        )
        try:
            serializer.is_valid(raise_exception=True)
            return serializer.save()
        except exceptions.ValidationError as exc:
            raise Refused(as_errors(exc.detail)) from exc
        except exceptions.PermissionDenied as exc:
            raise Refused({"detail": [str(exc.detail)]}) from exc

    def _write_calendar(self, item: Item, existing: Calendar | None) -> Model:
        data = self._with_team(dict(item.fields))
        return self._save(CalendarSerializer, existing, data)

    def _write_template(self, item: Item, existing: JobTemplate | None) -> Model:
        data = self._with_team(dict(item.fields))
        defaults = data.get("defaults")
        if isinstance(defaults, dict):
            stored = existing.defaults if existing is not None else {}
            data["defaults"] = unmask(defaults, stored, item.warnings)
        return self._save(JobTemplateSerializer, existing, data)

    def _write_job(self, item: Item, existing: Job | None) -> Model:
        data = self._with_team(dict(item.fields))
        depends_on = data.pop("depends_on", None)
        if "calendar" in data:
            data["calendar"] = self._calendar_id(data["calendar"])
        data = unmask(data, _values(existing), item.warnings)
        job = self._save(JobSerializer, existing, data)
        if depends_on is not None:
            try:
                set_dependencies(job, self._upstreams(depends_on))
            except DependencyError as exc:
                raise Refused({"depends_on": [str(exc)]}) from exc
        return job

    # --- references by name -------------------------------------------------------

    def _with_team(self, data: dict[str, Any]) -> dict[str, Any]:
        name = data.get("team")
        if name is None:
            return data
        if not isinstance(name, str):
            raise Refused({"team": ["must be the name of a team (a string) or null."]})
        team = access.viewable_teams(self.user).filter(name=name).first()
        if team is None:
            raise Refused({"team": [f"you are in no team named {name!r}."]})
        return {**data, "team": team.pk}

    def _calendar_id(self, name: Any) -> int | None:
        if name is None:
            return None
        if not isinstance(name, str):
            raise Refused({"calendar": ["must be the name of a calendar (a string) or null."]})
        calendar = self.saved[CALENDAR].get(name) or self._visible_named(Calendar, name)
        if calendar is None:
            raise Refused({"calendar": [f"no calendar named {name!r} in the file or yours."]})
        return calendar.pk

    def _visible_named(self, model: type[Model], name: str) -> Model | None:
        """The caller's own row of that name, else the one row of it they may see."""
        own = model.objects.filter(owner=self.user, name=name).first()
        if own is not None:
            return own
        shared = list(access.visible(self.user, model.objects.filter(name=name))[:2])
        return shared[0] if len(shared) == 1 else None

    def _upstreams(self, depends_on: Any) -> list[dict[str, Any]]:
        if not isinstance(depends_on, list):
            raise Refused({"depends_on": ['must be a list of {"job": name, "on": ...}.']})
        specs = []
        for spec in depends_on:
            name = spec.get("job") if isinstance(spec, dict) else None
            if not isinstance(name, str):
                raise Refused({"depends_on": ['each must be {"job": "<a job name>", "on": ...}.']})
            upstream = self.saved[JOB].get(name) or self._visible_named(Job, name)
            if upstream is None:
                raise Refused(
                    {"depends_on": [f"no job named {name!r} in the file or yours (refused?)."]}
                )
            on = spec.get("on", "success")
            if on not in ("success", "failure", "always"):
                raise Refused({"depends_on": [f"'on' must be success, failure or always; {on!r}."]})
            specs.append({"job": upstream, "on": on})
        return specs

    # --- what changed, what it does -----------------------------------------------

    def _snapshot(self, row: Model) -> dict[str, Any]:
        if isinstance(row, Job):
            row = Job.objects.get(pk=row.pk)
            return document.job_entry(row, self.request, secrets=True)
        if isinstance(row, JobTemplate):
            return document.template_entry(JobTemplate.objects.get(pk=row.pk), secrets=True)
        return document.calendar_entry(Calendar.objects.get(pk=row.pk), self.request)

    def _describe(self, row: Model, report: Report) -> None:
        if not isinstance(row, Job):
            return
        report.schedule = row.schedule_description
        report.next_runs = tuple(iso(moment) for moment in upcoming(row))


def upcoming(job: Job) -> list[datetime]:
    if not job.is_scheduled:
        return []
    now = datetime.now(UTC)
    runs, _ = job.timing().plan(max(job.schedule_reference, now), PREVIEW_COUNT,
                                schedules.Budget(schedules.MAX_PLAN_STEPS,
                                                 seconds=schedules.PLAN_SECONDS))  # fmt: skip
    return runs


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def upstream_names(item: Item) -> list[str]:
    depends_on = item.fields.get("depends_on")
    if not isinstance(depends_on, list):
        return []
    return [s["job"] for s in depends_on if isinstance(s, dict) and isinstance(s.get("job"), str)]


def as_errors(detail: Any) -> dict[str, Any]:
    """A serializer's errors as {field: [messages]} (plain strings)."""
    if isinstance(detail, dict):
        return {str(k): _messages(v) for k, v in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _messages(value: Any) -> Any:
    if isinstance(value, list):
        return [_messages(v) if isinstance(v, dict | list) else str(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _messages(v) for k, v in value.items()}
    return [str(value)]


def _values(job: Job | None) -> dict[str, Any]:
    if job is None:
        return {}
    return {"env": job.env, "notify_webhooks": job.notify_webhooks}


def unmask(fields: dict[str, Any], stored: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Values exported as *** (no secrets): the stored job's where it has them, else left
    out with a warning."""
    result = dict(fields)
    env = result.get("env")
    if isinstance(env, dict):
        result["env"] = _unmask_env(env, stored.get("env") or {}, warnings)
    hooks = result.get("notify_webhooks")
    if isinstance(hooks, list) and document.MASK in hooks:
        if stored.get("notify_webhooks"):
            result["notify_webhooks"] = stored["notify_webhooks"]
        else:
            result["notify_webhooks"] = [h for h in hooks if h != document.MASK]
            warnings.append(
                "notify_webhooks: the file has no URLs (exported without secrets); add them "
                "after the import."
            )
    return result


def _unmask_env(env: dict[str, Any], stored: dict[str, Any], warnings: list[str]) -> dict:
    result = {}
    for name, item in env.items():
        value = item.get("value") if isinstance(item, dict) else item
        if value != document.MASK:
            result[name] = item
        elif name in stored:
            result[name] = stored[name]
        else:
            warnings.append(
                f"env {name}: the file has no value (exported without secrets); left out, "
                "set it after the import."
            )
    return result
