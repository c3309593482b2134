"""The audit log: who changed what, when and from where (Zulip's RealmAuditLog, Rundeck's
audit). Every event is an :class:`~scheduler_app.models.AuditEvent` row, written in the
transaction of what it records.

- Who and from where: :class:`scheduler_app.middleware.AuditContextMiddleware` puts the
  request being served in a context variable (:func:`serving`); an event reads its user
  (the API's token user too: DRF sets it on the request) and client address (as the
  throttles read it: REMOTE_ADDR, or X-Forwarded-For as far as TRUSTED_PROXY_COUNT
  vouches). Outside a request (a command, a task) the actor is the system.
- Changes to rows: ``track(Model, ...)`` records each create, change (the fields that
  changed, before and after) and delete of a model, whoever saves it (API, admin, shell).
- Actions: ``record(action, obj)``, or ``with acting(action, obj):`` around a save whose
  changes belong to that action (a pause is ``enabled`` true -> false, one event).
- Who sees what: :func:`visible_to`, for the API and the admin alike.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, Q, QuerySet
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from scheduler_app import access, validation
from scheduler_app.models import (
    AuditEvent,
    Calendar,
    Job,
    JobTemplate,
    Membership,
    Run,
    Software,
    StoredFile,
    Team,
)

Action = AuditEvent.Action
Change = dict[str, Any]  # {"field", "before", "after"}

_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


@contextmanager
def serving(request: HttpRequest) -> Iterator[None]:
    """Events recorded meanwhile were done by ``request``'s user, from its address."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def requesting_user() -> Any:
    """The user of the request being served (AnonymousUser outside one)."""
    request = _request.get()
    return getattr(request, "user", None) or AnonymousUser()


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the throttles count it (DRF's NUM_PROXIES rule)."""
    ident = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address((ident or "").strip()))
    except ValueError:
        return None


def _actor() -> dict[str, Any]:
    request = _request.get()
    if request is None:
        return {}
    user = getattr(request, "user", None)
    who = {"address": client_address(request), "via": _via(request.path)}
    if user is not None and user.is_authenticated:
        who |= {"actor_id": user.pk, "actor_name": user.get_username()}
    return who


def _via(path: str) -> str:
    for prefix, via in (("/api/", "api"), ("/admin/", "admin")):
        if path.startswith(prefix):
            return via
    return ""


# --- what is recorded of an object ---------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How a model's rows are told: the fields diffed (names -> attributes), how some
    are masked, the job and owner an event on a row belongs to, and its label."""

    fields: Mapping[str, str]
    masks: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    job_of: Callable[[Any], int | None] = lambda obj: getattr(obj, "job_id", None)
    owner_of: Callable[[Any], int | None] = lambda obj: getattr(obj, "owner_id", None)
    team_of: Callable[[Any], int | None] = lambda obj: getattr(obj, "team_id", None)
    label_of: Callable[[Any], str] = str


_SPECS: dict[type[Model], Spec] = {}


def track(
    model: type[Model],
    *,
    exclude: Iterable[str] = (),
    masks: Mapping[str, Callable[[Any], Any]] | None = None,
    job_of: Callable[[Any], int | None] | None = None,
    owner_of: Callable[[Any], int | None] | None = None,
    team_of: Callable[[Any], int | None] | None = None,
    label_of: Callable[[Any], str] | None = None,
    saves: bool = True,
) -> None:
    """Record the creates, changes and deletes of ``model``'s rows (``saves=False``: only
    describe its rows for ``record``). ``exclude``: fields not diffed (what the system
    writes); ``masks``: field -> what is shown of its value (secrets)."""
    skipped = set(exclude)
    fields = {
        f.name: f.attname
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in skipped
    }
    given = {"job_of": job_of, "owner_of": owner_of, "team_of": team_of, "label_of": label_of}
    spec = Spec(fields, dict(masks or {}), **{k: v for k, v in given.items() if v is not None})
    _SPECS[model] = spec
    if saves:
        uid = f"audit:{model._meta.label}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=uid)
        post_save.connect(_after_save, sender=model, dispatch_uid=uid)
        post_delete.connect(_after_delete, sender=model, dispatch_uid=uid)


def _plain(value: Any) -> Any:
    """A value as JSON holds it (dates as ISO 8601 text)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _shown(spec: Spec, name: str, value: Any) -> Any:
    mask = spec.masks.get(name)
    return _plain(mask(value) if mask else value)


def diff(spec: Spec, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The fields whose values differ, masked; a masked value that looks the same on
    both sides (a secret changed) is still a change, its "after" saying so."""
    changes = []
    for name in spec.fields:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        shown_old, shown_new = _shown(spec, name, old), _shown(spec, name, new)
        if shown_old == shown_new:
            shown_new = {"changed": "a secret value"}
        changes.append({"field": name, "before": shown_old, "after": shown_new})
    return changes


def _values(spec: Spec, obj: Model) -> dict[str, Any]:
    return {name: getattr(obj, attname) for name, attname in spec.fields.items()}


# --- signals --------------------------------------------------------------------


def _before_save(sender: type[Model], instance: Model, raw: bool, **kwargs: Any) -> None:
    """Note the stored values of the fields this save writes (one query)."""
    instance._audit_before = None  # type: ignore[attr-defined]
    spec = _SPECS[sender]
    if raw or instance._state.adding or instance.pk is None:
        return
    written = kwargs.get("update_fields")
    names = [n for n in spec.fields if written is None or n in written]
    if not names:
        return
    attnames = [spec.fields[n] for n in names]
    row = sender._base_manager.filter(pk=instance.pk).values(*attnames).first()
    if row is not None:
        instance._audit_before = {n: row[spec.fields[n]] for n in names}  # type: ignore[attr-defined]


def _after_save(sender: type[Model], instance: Model, created: bool, raw: bool, **kw: Any) -> None:
    if raw:
        return
    spec = _SPECS[sender]
    after = _values(spec, instance)
    if created:
        empty = (None, "", [], {})
        changes = [
            {"field": n, "before": None, "after": _shown(spec, n, v)}
            for n, v in after.items()
            if v not in empty
        ]
        record(Action.CREATE, instance, changes)
        return
    before = getattr(instance, "_audit_before", None)
    if before is None:
        return
    changes = diff(spec, before, {n: after[n] for n in before})
    pending = _pending.get()
    if pending is not None and pending.holds(instance):
        pending.changes.extend(changes)
    elif changes:
        record(Action.CHANGE, instance, changes)


def _after_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    spec = _SPECS[sender]
    changes = [
        {"field": n, "before": _shown(spec, n, v), "after": None}
        for n, v in _values(spec, instance).items()
    ]
    record(Action.DELETE, instance, changes)


# --- actions --------------------------------------------------------------------


@dataclass
class _Pending:
    obj: Model
    changes: list[Change]

    def holds(self, instance: Model) -> bool:
        return type(instance) is type(self.obj) and instance.pk == self.obj.pk


_pending: ContextVar[_Pending | None] = ContextVar("audit_pending", default=None)


@contextmanager
def acting(action: str, obj: Model) -> Iterator[None]:
    """One event for ``action`` on ``obj``, with the changes its saves meanwhile make
    (instead of a "change" event of their own). Nothing is recorded if it fails."""
    pending = _Pending(obj, [])
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    record(action, obj, pending.changes)


def record(action: str, obj: Model, changes: list[Change] | None = None) -> AuditEvent:
    """An event: ``action`` done to ``obj`` now, by the request's user (or the system)."""
    event = _event(action, obj, changes, _actor())
    event.save()
    return event


def record_many(action: str, objs: Iterable[Model], changes: list[Change] | None = None) -> None:
    """The same event for each of ``objs``, written in one statement (an export's rows)."""
    actor = _actor()
    AuditEvent.objects.bulk_create([_event(action, obj, changes, actor) for obj in objs])


def _event(action: str, obj: Model, changes: list[Change] | None,
           actor: dict[str, Any]) -> AuditEvent:  # fmt: skip
    spec = _SPECS[type(obj)]
    return AuditEvent(
        action=action,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        object_label=spec.label_of(obj)[:200],
        job_id=spec.job_of(obj),
        owner_id=spec.owner_of(obj),
        team_id=spec.team_of(obj),
        changes=changes or [],
        **actor,
    )


# --- who sees what --------------------------------------------------------------


def visible_to(user: Any) -> QuerySet[AuditEvent]:
    """The events ``user`` may see: those of the rows they own, of the jobs they may
    view, and of their teams (a team's rows and members). Superusers: all."""
    events = AuditEvent.objects.all()
    if not (user.is_authenticated and user.is_active):
        return events.none()
    if user.is_superuser:
        return events
    # Subqueries, not joins: a deleted job's events keep its id, and a join on it would
    # be taken for one that always matches (Django trusts a foreign key).
    jobs = access.viewable_jobs(user).values("id")
    teams = access.viewable_teams(user).values("id")
    return events.filter(Q(owner_id=user.pk) | Q(job_id__in=jobs) | Q(team_id__in=teams))


# --- what is tracked ------------------------------------------------------------

# Written by the system as runs fire and end, or kept true by Job.save: not edits.
SYSTEM_FIELDS = {*Job.LIFECYCLE_FIELDS, *Job.REPORTED_FIELDS, *Job.DERIVED_FIELDS}

track(Job, exclude=SYSTEM_FIELDS, masks={"env": validation.mask_env}, job_of=lambda j: j.pk)
track(JobTemplate, exclude={"created_at", "updated_at"},
      masks={"defaults": validation.mask_defaults})  # fmt: skip
track(Calendar, exclude={"created_at", "updated_at"})
track(StoredFile, exclude={"created_at", "storage_name"})
track(Software, exclude={"created_at", "updated_at"})
track(Run, saves=False, owner_of=lambda run: run.job.owner_id, team_of=lambda run: run.job.team_id,
      label_of=lambda run: f"run {run.pk} of {run.job.name}")  # fmt: skip
track(Team, exclude={"created_at"}, owner_of=lambda team: None, team_of=lambda team: team.pk)
track(Membership, exclude={"added_at"}, owner_of=lambda m: None,
      label_of=lambda m: f"{m.user} in {m.team}")  # fmt: skip
