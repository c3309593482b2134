"""A world of users for permission tests: one of each role, and rows for them to act on.

``world`` (a fixture, imported by tests/conftest.py) holds, in team ``ops``:

=============  ==================================================================
user           what they are
=============  ==================================================================
``root``       a superuser, in no team: every right
``admin``      the team's admin; owns the team's rows
``coder``      an editor with the code right (scheduler_app.run_code)
``editor``     an editor without it
``operator``   an operator
``viewer``     a viewer
``outsider``   in no team; owns ``private``, a job of their own
=============  ==================================================================

Everyone but ``root`` is staff with every model permission of the scheduler's
admin pages (group ``scheduler staff``), so that what they may do to a row is
decided by their role alone, as in the API. ``world.api(name)`` is that user's
API client; ``world.browser(name)`` their logged-in Django test client.

Rows, all in the team and owned by ``admin`` unless said: ``http_job`` (kind http),
``code_job`` (kind command), ``run`` (a queued run of ``code_job``), ``alert`` (an
open one of ``code_job``), ``template`` (a command template), ``calendar``;
``private`` (the outsider's own http job, in no team).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app import teams
from scheduler_app.models import Alert, Calendar, Job, JobTemplate, Run, Team
from tests.helpers import client_for, grant_run_code, make_job

ROLES = {"admin": "admin", "coder": "editor", "editor": "editor", "operator": "operator",
         "viewer": "viewer"}  # fmt: skip
USERS = ("root", *ROLES, "outsider")
HTTP = {"url": "https://example.com/health", "method": "GET"}


@dataclass
class World:
    team: Team
    users: dict[str, Any]
    http_job: Job
    code_job: Job
    private: Job
    run: Run
    alert: Alert
    template: JobTemplate
    calendar: Calendar
    clients: dict[str, APIClient] = field(default_factory=dict)

    def api(self, name: str) -> APIClient:
        if name not in self.clients:
            self.clients[name] = client_for(self.users[name])
        return self.clients[name]

    def browser(self, name: str) -> Client:
        client = Client()
        client.force_login(self.users[name])
        return client


def staff_group() -> Group:
    group, _ = Group.objects.get_or_create(name="scheduler staff")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="scheduler_app").exclude(
            codename="run_code"
        )
    )
    return group


def make_users() -> dict[str, Any]:
    people = get_user_model().objects
    users = {"root": people.create_superuser("root", password="root-password-1")}
    group = staff_group()
    for name in (*ROLES, "outsider"):
        user = people.create_user(name, password=f"{name}-password-1", is_staff=True)
        user.groups.add(group)
        users[name] = user
    users["coder"] = grant_run_code(users["coder"])
    users["admin"] = grant_run_code(users["admin"])
    return users


@pytest.fixture
def world(db) -> World:
    users = make_users()
    team = teams.create_team("ops", users["admin"])
    for name, role in ROLES.items():
        if name != "admin":
            teams.add_member(team, users[name], role)
    admin = users["admin"]
    code_job = make_job(admin, name="backup", team=team)
    return World(
        team=team,
        users=users,
        http_job=make_job(admin, name="ping", kind="http", payload=HTTP, team=team),
        code_job=code_job,
        private=make_job(users["outsider"], name="mine", kind="http", payload=HTTP),
        run=Run.objects.create(job=code_job, trigger="manual", scheduled_for=timezone.now()),
        alert=Alert.objects.create(
            kind="missed", job=code_job, since=timezone.now(), detail="no run started"
        ),
        template=JobTemplate.objects.create(
            owner=admin,
            team=team,
            name="nightly",
            defaults={"payload": {"command": "true"}, "schedule": "manual"},
        ),
        calendar=Calendar.objects.create(owner=admin, team=team, name="holidays"),
    )
