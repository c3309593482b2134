"""Changes to teams and their members, and pausing a deactivated user's jobs.

Each membership change runs with the team's memberships locked, so two admins
demoting each other at once cannot leave a team without an admin.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from scheduler_app.models import Job, Membership, Team

Role = Membership.Role


class TeamError(Exception):
    """A change refused, with its messages by field (as a 400 shows them)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def create_team(name: str, creator: Any, description: str = "") -> Team:
    """A new team, its creator its first admin."""
    with transaction.atomic():
        team = Team.objects.create(name=name, description=description)
        Membership.objects.create(team=team, user=creator, role=Role.ADMIN)
    return team


def add_member(team: Team, user: Any, role: str) -> Membership:
    if not user.is_active:
        raise TeamError({"user": [f"{user.username} is deactivated."]})
    with transaction.atomic():
        if Membership.objects.select_for_update().filter(team=team, user=user).exists():
            said = f"{user.username} is already a member of '{team}'; PATCH changes a role."
            raise TeamError({"user": [said]})
        return Membership.objects.create(team=team, user=user, role=role)


def set_role(team: Team, user: Any, role: str) -> Membership:
    with transaction.atomic():
        member = _locked_member(team, user)
        if member.role == Role.ADMIN and role != Role.ADMIN:
            _keep_an_admin(team, member, "role")
        member.role = role
        member.save(update_fields=["role"])
    return member


def remove_member(team: Team, user: Any) -> None:
    with transaction.atomic():
        member = _locked_member(team, user)
        if member.role == Role.ADMIN:
            _keep_an_admin(team, member, "user")
        member.delete()


def _locked_member(team: Team, user: Any) -> Membership:
    members = {m.user_id: m for m in Membership.objects.select_for_update().filter(team=team)}
    if user.pk not in members:
        raise TeamError({"user": [f"{user.username} is not a member of '{team}'."]})
    return members[user.pk]


def _keep_an_admin(team: Team, leaving: Membership, field: str) -> None:
    others = Membership.objects.filter(team=team, role=Role.ADMIN).exclude(pk=leaving.pk)
    if not others.exists():
        raise TeamError(
            {field: [f"'{team}' needs at least one admin: make another member admin first."]}
        )


def holdings(team: Team) -> dict[str, list[str]]:
    """The rows still in the team, by kind (a few names of each): a team that holds
    any cannot be deleted, so that no job loses its team's people unnoticed."""
    found = {
        "jobs": list(team.jobs.values_list("name", flat=True)[:5]),
        "templates": list(team.jobtemplates.values_list("name", flat=True)[:5]),
        "calendars": list(team.calendars.values_list("name", flat=True)[:5]),
    }
    return {kind: names for kind, names in found.items() if names}


def pause_jobs_of_deactivated(user: Any) -> int:
    """Pause every enabled job the user owns, saying why; the number paused."""
    reason = f"paused because its owner {user.get_username()} was deactivated."
    paused = 0
    for job in Job.objects.filter(owner=user, enabled=True):
        job.enabled = False
        job.paused_reason = reason
        job.save(update_fields=["enabled", "paused_reason"])
        paused += 1
    return paused
