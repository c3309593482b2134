"""Who may do what: the rules of access, in one place (the API and the admin ask here).

A job, template or calendar belongs to its owner and optionally to one team. A
user's role on a row is the best of:

- ownership: the owner has every right on their rows (``admin``);
- their role in the row's team (scheduler_app.models.Membership.Role);
- a superuser has every right on every row.

Each action needs a role at least:

=========  ==========  ====================================================
action     role        what
=========  ==========  ====================================================
view       viewer      read jobs, runs, logs, alerts, templates, calendars
operate    operator    run now, pause, resume, cancel a run
edit       editor      create (in the team), change, delete
manage     admin       a team's members; moving a row out of its team
=========  ==========  ====================================================

``is_staff`` gives nothing here: it opens the admin site, whose pages ask these
rules too. Defining what runs code on a worker (CODE_KINDS, or any ``condition``)
needs the model permission ``scheduler_app.run_code`` besides.

A row the user cannot view is answered as missing (404); one they can view but not
act on, with a refusal saying which role the action needs (403).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet

from scheduler_app import validation
from scheduler_app.models import Alert, Job, Membership, Run, Team
from scheduler_app.payloads import CODE_KINDS

Role = Membership.Role
# Each role has the rights of those before it.
RANKS = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.EDITOR: 3, Role.ADMIN: 4}
ACTIONS = {"view": Role.VIEWER, "operate": Role.OPERATOR, "edit": Role.EDITOR,
           "manage": Role.ADMIN}  # fmt: skip
WHAT = {
    "view": "viewing it",
    "operate": "running, pausing, resuming or cancelling",
    "edit": "changing or deleting it",
    "manage": "managing the team and its members",
}

RUN_CODE = "scheduler_app.run_code"
RUN_CODE_LABEL = "Can define jobs that run code"


def roles_at_least(role: str) -> list[str]:
    return [other for other, rank in RANKS.items() if rank >= RANKS[Role(role)]]


def subject(row: Model) -> Model | None:
    """The row whose owner and team decide: a run's or an alert's job (None for the
    scheduler's own alerts, which only superusers see)."""
    return row.job if isinstance(row, Run | Alert) else row


def team_role(user: Any, team_id: int | None) -> str | None:
    if team_id is None or not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user_id=user.pk, team_id=team_id)
        .values_list("role", flat=True)
        .first()
    )


def role_on(user: Any, row: Model) -> str | None:
    """The user's role on a job, run, alert, template, calendar or team; None: none at all."""
    return _role(user, row, lambda team_id: team_role(user, team_id))


def _role(user: Any, row: Model, role_in: Callable[[int | None], str | None]) -> str | None:
    """role_on, the user's role in a team told by ``role_in`` (a query, or a dict)."""
    if not (user.is_authenticated and user.is_active):
        return None
    if user.is_superuser:
        return Role.ADMIN
    target = subject(row)
    if target is None:
        return None
    if isinstance(target, Team):
        return role_in(target.pk)
    if target.owner_id == user.pk:  # type: ignore[attr-defined]
        return Role.ADMIN
    return role_in(target.team_id)  # type: ignore[attr-defined]


def can(user: Any, action: str, row: Model) -> bool:
    """Whether the user may do ``action`` (view, operate, edit, manage) to the row."""
    return _allows(role_on(user, row), action)


def _allows(role: str | None, action: str) -> bool:
    return role is not None and RANKS[Role(role)] >= RANKS[ACTIONS[action]]


@dataclass(frozen=True)
class Rights:
    """A user's roles in all their teams, read in one query: ``can`` asks it for any number
    of rows (an export, a page) without a query each. Only for the span of one request."""

    user: Any
    team_roles: Mapping[int, str]

    def can(self, action: str, row: Model) -> bool:
        return _allows(_role(self.user, row, self._role_in), action)

    def _role_in(self, team_id: int | None) -> str | None:
        return None if team_id is None else self.team_roles.get(team_id)


def rights_of(user: Any) -> Rights:
    """The user's Rights (no query for a superuser or an anonymous user)."""
    if not (user.is_authenticated and user.is_active) or user.is_superuser:
        return Rights(user, {})
    roles = Membership.objects.filter(user_id=user.pk).values_list("team_id", "role")
    return Rights(user, dict(roles))


def refusal(user: Any, action: str, row: Model) -> str:
    """Why the user may not do ``action`` to a row they can see, in words for a 403."""
    needed = ACTIONS[action].value
    role = role_on(user, row) or "not a member"
    target = subject(row)
    team = target if isinstance(target, Team) else getattr(target, "team", None)
    where = f"team '{team}'" if team is not None else "no team"
    return f"{WHAT[action]} needs the role {needed} in {where}; your role there: {role}."


def with_right(user: Any, action: str, rows: QuerySet[Any], via: str = "") -> QuerySet[Any]:
    """The rows on which the user may do ``action``; ``via`` is the path to the row that
    decides (``"job__"`` for runs and alerts; ``""`` for jobs, templates, calendars)."""
    if not (user.is_authenticated and user.is_active):
        return rows.none()
    if user.is_superuser:
        return rows
    teams = Membership.objects.filter(
        user_id=user.pk, role__in=roles_at_least(ACTIONS[action])
    ).values("team_id")
    return rows.filter(Q(**{f"{via}owner_id": user.pk}) | Q(**{f"{via}team__in": teams}))


def visible(user: Any, rows: QuerySet[Any], via: str = "") -> QuerySet[Any]:
    """The rows the user may view (others are answered as missing)."""
    return with_right(user, "view", rows, via)


def viewable_jobs(user: Any) -> QuerySet[Job]:
    """Every job the user may view: their own, their teams', or all for a superuser."""
    return visible(user, Job.objects.all())


def viewable_teams(user: Any) -> QuerySet[Team]:
    """The teams the user is a member of (all, for a superuser)."""
    if not (user.is_authenticated and user.is_active):
        return Team.objects.none()
    if user.is_superuser:
        return Team.objects.all()
    # By id, not a join: counts over a team's memberships stay whole.
    return Team.objects.filter(id__in=Membership.objects.filter(user_id=user.pk).values("team_id"))


def teams_with_right(user: Any, action: str) -> QuerySet[Team]:
    """The teams in which the user's role allows ``action`` (``edit``: may put rows in it)."""
    if not (user.is_authenticated and user.is_active) or user.is_superuser:
        return viewable_teams(user)
    # One filter() call: both conditions hold for the same membership.
    return Team.objects.filter(
        memberships__user_id=user.pk, memberships__role__in=roles_at_least(ACTIONS[action])
    )


def team_refusal(user: Any, row: Model | None, team: Team | None) -> str | None:
    """Why the user may not give a row (None: a new one) this team, or None when they may.

    Putting a row in a team needs the role editor there; taking it out of its team (or
    into another) needs admin on the row (its owner, a team admin)."""
    current = getattr(row, "team", None) if row is not None else None
    if team == current:
        return None
    if row is not None and current is not None and not can(user, "manage", row):
        return (
            f"moving it out of team '{current}' needs its owner or an admin of the team; "
            f"your role there: {role_on(user, row)}."
        )
    if team is not None and not can(user, "edit", team):
        return (
            f"putting it in team '{team}' needs the role editor there; "
            f"your role there: {role_on(user, team) or 'not a member'}."
        )
    return None


def may_run_code(user: Any) -> bool:
    """The code right, given to the user or one of their groups (superusers have it)."""
    return bool(user.is_authenticated and user.has_perm(RUN_CODE))


def code_reasons(values: Mapping[str, Any]) -> list[str]:
    """What in a job's (or a template's) fields runs code on a worker: its kind (a job
    without one is a ``command``), its condition."""
    reasons = []
    kind = values.get("kind") or validation.DEFAULT_KIND
    if kind in CODE_KINDS:
        reasons.append(f"kind '{kind}'")
    if values.get("condition"):
        reasons.append("a condition")
    return reasons


def code_refusal(user: Any, values: Mapping[str, Any], noun: str = "job") -> str | None:
    """Why the user may not define this job or template (it runs code and they lack the
    code right), or None."""
    reasons = code_reasons(values)
    if not reasons or may_run_code(user):
        return None
    return (
        f"a {noun} with {' and '.join(reasons)} runs code on a worker: that needs the "
        f"permission {RUN_CODE} ('{RUN_CODE_LABEL}'), which you do not have. Ask an "
        f"administrator for it, or use kind 'http'."
    )
