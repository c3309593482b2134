"""Who may do what, as a table: every endpoint and admin page, for every role.

The world (tests/world.py): a superuser, the team's admin, an editor with and one
without the code right, an operator, a viewer and an outsider. A row the user cannot
view is 404; one they can view but not act on is 403 with the role it needs; a job
that runs code needs scheduler_app.run_code besides (403 naming it).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from scheduler_app import access
from scheduler_app.models import Job, Membership
from tests.test_validation import as_form
from tests.world import HTTP, USERS

RIGHTS = {
    "root": {"view", "operate", "edit", "manage"},
    "admin": {"view", "operate", "edit", "manage"},
    "coder": {"view", "operate", "edit"},
    "editor": {"view", "operate", "edit"},
    "operator": {"view", "operate"},
    "viewer": {"view"},
    "outsider": set(),
}
CODERS = {"root", "admin", "coder"}
PUT = {"kind": "http", "payload": HTTP, "schedule": "manual"}
PROMOTION = {"user": "viewer", "role": "operator"}


def expected(user: str, action: str, ok: int, code: bool = False) -> int:
    if "view" not in RIGHTS[user]:
        return 404
    if action not in RIGHTS[user] or (code and user not in CODERS):
        return 403
    return ok


# (method, path, body, the action it needs, the success status, whether it defines code)
ROW_CASES: list[tuple[str, str, Any, str, int, bool]] = [
    ("get", "jobs/{http_job}/", None, "view", 200, False),
    ("get", "jobs/{http_job}/runs/", None, "view", 200, False),
    ("get", "jobs/{http_job}/next-runs/", None, "view", 200, False),
    ("post", "jobs/{http_job}/pause/", None, "operate", 200, False),
    ("post", "jobs/{http_job}/resume/", None, "operate", 200, False),
    ("post", "jobs/{http_job}/run/", None, "operate", 202, False),
    ("patch", "jobs/{http_job}/", {"description": "x"}, "edit", 200, False),
    ("put", "jobs/{http_job}/", {**PUT, "name": "ping"}, "edit", 200, False),
    ("delete", "jobs/{http_job}/", None, "edit", 204, False),
    ("patch", "jobs/{code_job}/", {"description": "x"}, "edit", 200, True),
    ("delete", "jobs/{code_job}/", None, "edit", 204, False),
    ("get", "runs/{run}/", None, "view", 200, False),
    ("get", "runs/{run}/log/", None, "view", 200, False),
    ("post", "runs/{run}/cancel/", None, "operate", 200, False),
    ("get", "alerts/{alert}/", None, "view", 200, False),
    ("get", "templates/{template}/", None, "view", 200, False),
    ("patch", "templates/{template}/", {"description": "x"}, "edit", 200, True),
    ("delete", "templates/{template}/", None, "edit", 204, False),
    ("post", "templates/{template}/instantiate/", {"name": "made"}, "view", 201, True),
    ("get", "calendars/{calendar}/", None, "view", 200, False),
    ("patch", "calendars/{calendar}/", {"description": "x"}, "edit", 200, False),
    ("delete", "calendars/{calendar}/", None, "edit", 204, False),
    ("get", "teams/{team}/", None, "view", 200, False),
    ("patch", "teams/{team}/", {"description": "x"}, "manage", 200, False),
    ("get", "teams/{team}/members/", None, "view", 200, False),
    ("post", "teams/{team}/members/", {"user": "outsider"}, "manage", 201, False),
    ("patch", "teams/{team}/members/", PROMOTION, "manage", 200, False),
    ("delete", "teams/{team}/members/?user=viewer", None, "manage", 204, False),
]


def url(world: Any, path: str) -> str:
    ids = {name: getattr(world, name).id for name in
           ("http_job", "code_job", "run", "alert", "template", "calendar", "team")}  # fmt: skip
    return "/api/v1/" + path.format(**ids)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(
    ("method", "path", "body", "action", "ok", "code"), ROW_CASES, ids=lambda v: str(v)
)
def test_each_role_may_do_what_the_table_says(world, user, method, path, body, action, ok, code):
    response = getattr(world.api(user), method)(url(world, path), body, format="json")
    assert response.status_code == expected(user, action, ok, code), response.data
    if response.status_code == 403:
        role = access.ACTIONS[action].value
        reason = access.RUN_CODE if action in RIGHTS[user] else f"needs the role {role} in"
        assert reason in response.data["detail"]


def test_a_refusal_names_the_role_it_needs_and_the_one_you_have(world):
    response = world.api("viewer").post(url(world, "jobs/{http_job}/pause/"))
    assert response.status_code == 403
    assert response.data == {
        "detail": "running, pausing, resuming or cancelling needs the role operator in "
        "team 'ops'; your role there: viewer."
    }


@pytest.mark.parametrize("user", USERS)
def test_lists_hold_what_the_user_may_view(world, user):
    api = world.api(user)
    names = sorted(j["name"] for j in api.get("/api/v1/jobs/").data["results"])
    teams = [t["name"] for t in api.get("/api/v1/teams/").data["results"]]
    runs = len(api.get("/api/v1/runs/").data["results"])
    stats = api.get("/api/v1/stats/").data["jobs"]["total"]
    if user == "root":
        assert (names, teams, runs, stats) == (["backup", "mine", "ping"], ["ops"], 1, 3)
    elif user == "outsider":  # staff, with every model permission: no more than their own
        assert (names, teams, runs, stats) == (["mine"], [], 0, 1)
    else:
        assert (names, teams, runs, stats) == (["backup", "ping"], ["ops"], 1, 2)


@pytest.mark.parametrize("user", USERS)
def test_putting_a_new_job_in_the_team_needs_the_editor_role(world, user):
    job = {"name": "new", "kind": "http", "payload": HTTP, "schedule": "manual",
           "team": world.team.id}  # fmt: skip
    response = world.api(user).post("/api/v1/jobs/", job, format="json")
    want = {"root": 201, "admin": 201, "coder": 201, "editor": 201, "operator": 403,
            "viewer": 403, "outsider": 400}[user]  # fmt: skip
    assert response.status_code == want, response.data
    if want == 400:  # a team you are not in is one that does not exist
        assert response.data == {"team": [f'Invalid pk "{world.team.id}" - object does not exist.']}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(
    "job",
    [
        {"kind": "command", "payload": {"command": "id"}},
        {"payload": {"command": "id"}},  # command is the default kind
        {"kind": "python", "payload": {"code": "print(1)"}},
        {"kind": "celery", "payload": {"task": "workers.echo"}},
        {"kind": "http", "payload": HTTP, "condition": "true"},
    ],
    ids=["command", "default-kind", "python", "celery", "http-with-condition"],
)
def test_defining_code_needs_the_code_right(world, user, job):
    response = world.api(user).post(
        "/api/v1/jobs/", {"name": "code", "schedule": "manual", **job}, format="json"
    )
    if user in CODERS:
        assert response.status_code == 201, response.data
        return
    assert response.status_code == 403
    assert access.RUN_CODE in response.data["detail"]
    assert "Can define jobs that run code" in response.data["detail"]


def test_an_http_job_needs_no_code_right_until_it_gets_a_condition(world):
    api = world.api("editor")
    job_url = f"/api/v1/jobs/{world.http_job.id}/"
    assert api.patch(job_url, {"timeout": 30}, format="json").status_code == 200
    refused = api.patch(job_url, {"condition": "test -f /tmp/go"}, format="json")
    assert refused.status_code == 403
    assert refused.data["detail"].startswith("a job with a condition runs code on a worker")
    turned = api.patch(job_url, {"kind": "command", "payload": {"command": "id"}}, format="json")
    assert turned.status_code == 403 and "kind 'command'" in turned.data["detail"]


def test_the_code_right_may_come_from_a_group(world):
    coders = Group.objects.create(name="coders")
    coders.permissions.add(Permission.objects.get(codename="run_code"))
    world.users["editor"].groups.add(coders)
    job = {"name": "c", "payload": {"command": "id"}, "schedule": "manual"}
    assert world.api("editor").post("/api/v1/jobs/", job, format="json").status_code == 201


def test_a_template_that_runs_code_needs_the_code_right(world):
    template = {"name": "t", "defaults": {"kind": "python", "payload": {"code": "1"}}}
    refused = world.api("editor").post("/api/v1/templates/", template, format="json")
    assert refused.status_code == 403 and access.RUN_CODE in refused.data["detail"]
    http = {"name": "h", "defaults": {"kind": "http", "payload": HTTP}}
    assert world.api("editor").post("/api/v1/templates/", http, format="json").status_code == 201


def test_moving_a_job_out_of_its_team_needs_its_owner_or_a_team_admin(world):
    job_url = f"/api/v1/jobs/{world.http_job.id}/"
    refused = world.api("editor").patch(job_url, {"team": None}, format="json")
    assert refused.status_code == 403
    assert refused.data["detail"].startswith("moving it out of team 'ops' needs its owner")
    assert world.api("admin").patch(job_url, {"team": None}, format="json").status_code == 200
    # Now the admin's own: the team's editor no longer sees it.
    assert world.api("editor").get(job_url).status_code == 404


def test_an_editor_may_use_the_teams_calendar_and_depend_on_its_jobs(world):
    job = {"name": "after", "kind": "http", "payload": HTTP, "schedule": "daily",
           "calendar": world.calendar.id, "depends_on": [{"job": world.code_job.id}]}  # fmt: skip
    assert world.api("editor").post("/api/v1/jobs/", job, format="json").status_code == 201
    theirs = world.api("outsider").post("/api/v1/jobs/", job, format="json")
    assert theirs.status_code == 400 and set(theirs.data) == {"calendar", "depends_on"}


def test_anyone_may_make_a_team_and_becomes_its_admin(world):
    api = world.api("outsider")
    made = api.post("/api/v1/teams/", {"name": "night shift"}, format="json")
    assert made.status_code == 201, made.data
    assert made.data["role"] == "admin" and made.data["members"] == 1
    clash = api.post("/api/v1/teams/", {"name": "ops"}, format="json")
    assert clash.status_code == 400
    assert clash.data == {"name": ["a team named 'ops' exists already."]}


def test_members_are_listed_added_changed_and_removed(world):
    api, members = world.api("admin"), f"/api/v1/teams/{world.team.id}/members/"
    listed = api.get(members).data["results"]
    assert [(m["user"], m["role"]) for m in listed] == [
        ("admin", "admin"), ("coder", "editor"), ("editor", "editor"),
        ("operator", "operator"), ("viewer", "viewer"),
    ]  # fmt: skip
    added = api.post(members, {"user": "outsider", "role": "operator"}, format="json")
    assert added.status_code == 201 and added.data["role"] == "operator"
    assert world.api("outsider").post(url(world, "jobs/{http_job}/run/")).status_code == 202
    again = api.post(members, {"user": "outsider"}, format="json")
    assert again.status_code == 400 and "already a member" in again.data["user"][0]
    assert api.patch(members, {"user": "outsider", "role": "viewer"}, format="json").data == {
        **added.data,
        "role": "viewer",
    }
    assert api.delete(members + "?user=outsider").status_code == 204
    assert world.api("outsider").get(url(world, "jobs/{http_job}/")).status_code == 404


@pytest.mark.parametrize(
    ("method", "body", "field", "message"),
    [
        ("post", {"user": "nobody"}, "user", "Object with username=nobody does not exist."),
        ("post", {"user": "outsider", "role": "owner"}, "role", '"owner" is not a valid choice.'),
        ("patch", {"user": "outsider", "role": "viewer"}, "user", "outsider is not a member"),
        ("patch", {"user": "viewer"}, "role", "This field is required."),
        ("patch", {"user": "admin", "role": "editor"}, "role", "needs at least one admin"),
        ("delete", None, "user", "This field is required."),
    ],
)
def test_member_changes_are_validated(world, method, body, field, message):
    members = f"/api/v1/teams/{world.team.id}/members/"
    response = getattr(world.api("admin"), method)(members, body, format="json")
    assert response.status_code == 400
    assert list(response.data) == [field] and message in str(response.data[field][0])


def test_the_last_admin_cannot_leave_but_one_of_two_can(world):
    api, members = world.api("admin"), f"/api/v1/teams/{world.team.id}/members/"
    assert api.delete(members + "?user=admin").status_code == 400
    api.patch(members, {"user": "coder", "role": "admin"}, format="json")
    assert api.delete(members + "?user=admin").status_code == 204
    assert not Membership.objects.filter(user=world.users["admin"]).exists()


def test_a_team_that_holds_rows_cannot_be_deleted(world):
    api = world.api("admin")
    response = api.delete(f"/api/v1/teams/{world.team.id}/")
    assert response.status_code == 400
    assert response.data["team"][0].startswith("still holds jobs: ")
    empty = api.post("/api/v1/teams/", {"name": "empty"}, format="json").data
    assert api.delete(f"/api/v1/teams/{empty['id']}/").status_code == 204


def test_a_deactivated_users_jobs_are_paused_with_the_reason(world):
    admin = world.users["admin"]
    admin.is_active = False
    admin.save()
    jobs = Job.objects.filter(owner=admin)
    assert {(j.enabled, j.paused_reason) for j in jobs} == {
        (False, "paused because its owner admin was deactivated.")
    }
    shown = world.api("operator").get(url(world, "jobs/{http_job}/")).data
    assert (shown["status"], shown["paused_reason"]) == (
        "paused",
        "paused because its owner admin was deactivated.",
    )
    resumed = world.api("operator").post(url(world, "jobs/{http_job}/resume/")).data
    assert (resumed["status"], resumed["paused_reason"]) == ("active", "")
    assert Job.objects.get(pk=world.private.pk).enabled  # another user's stays


def test_deactivating_in_the_admin_pauses_the_jobs(world):
    admin = world.users["admin"]
    page = f"/admin/auth/user/{admin.id}/change/"
    form = world.browser("root").get(page).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "is_active"}
    data.update({"date_joined_0": admin.date_joined.strftime("%Y-%m-%d"),
                 "date_joined_1": admin.date_joined.strftime("%H:%M:%S"),
                 "groups": [g.id for g in admin.groups.all()],
                 "user_permissions": [p.id for p in admin.user_permissions.all()],
                 "is_staff": "on"})  # fmt: skip
    data.pop("last_login", None)
    response = world.browser("root").post(page, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not Job.objects.filter(owner=admin, enabled=True).exists()


# --- the admin --------------------------------------------------------------------


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("page", ["job", "run", "alert", "jobtemplate", "calendar", "team"])
def test_admin_lists_hold_what_the_user_may_view(world, user, page):
    html = world.browser(user).get(f"/admin/scheduler_app/{page}/").content.decode()
    row = {"job": world.http_job, "run": world.run, "alert": world.alert,
           "jobtemplate": world.template, "calendar": world.calendar,
           "team": world.team}[page]  # fmt: skip
    link = f"/admin/scheduler_app/{page}/{row.id}/change/"
    assert (link in html) == (user != "outsider"), (user, page)


# Runs and alerts are the system's record: their pages have no Save for anyone.
ADMIN_ROWS = [("job", "http_job", "edit"), ("run", "run", None), ("alert", "alert", None),
              ("jobtemplate", "template", "edit"), ("calendar", "calendar", "edit"),
              ("team", "team", "manage")]  # fmt: skip


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("page", "row", "action"), ADMIN_ROWS)
def test_admin_row_pages_are_editable_as_the_role_allows(world, user, page, row, action):
    client = world.browser(user)
    response = client.get(f"/admin/scheduler_app/{page}/{getattr(world, row).id}/change/")
    if user == "outsider":  # the admin's "does not exist": back to the index
        assert response.status_code == 302
        return
    assert response.status_code == 200
    editable = action is not None and action in RIGHTS[user]
    assert ('name="_save"' in response.content.decode()) == editable, (user, page)


@pytest.mark.parametrize("user", USERS)
def test_admin_actions_need_the_operator_role(world, user):
    world.browser(user).post(
        "/admin/scheduler_app/job/", {"action": "pause", "_selected_action": [world.http_job.id]}
    )
    world.http_job.refresh_from_db()
    assert (not world.http_job.enabled) == ("operate" in RIGHTS[user])


def test_the_admin_refuses_code_without_the_code_right(world):
    job = {"name": "c", "kind": "command", "payload": {"command": "id"}, "schedule": "manual",
           "timezone": "UTC", "team": world.team.id}  # fmt: skip
    form = {k: v for k, v in as_form(job, 0).items() if k != "owner"}
    response = world.browser("editor").post("/admin/scheduler_app/job/add/", form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert access.RUN_CODE in errors[0]
    accepted = world.browser("coder").post("/admin/scheduler_app/job/add/", form)
    assert accepted.status_code == 302
    made = Job.objects.get(name="c")
    assert (made.owner, made.team) == (world.users["coder"], world.team)


def test_create_from_template_needs_the_code_right(world):
    action = {"action": "new_job", "_selected_action": [world.template.id]}
    refused = world.browser("editor").post("/admin/scheduler_app/jobtemplate/", action)
    assert refused.status_code == 302 and "job/add" not in refused["Location"]
    allowed = world.browser("coder").post("/admin/scheduler_app/jobtemplate/", action)
    assert "/admin/scheduler_app/job/add/" in allowed["Location"]


def test_a_team_admin_manages_members_in_the_admin(world):
    page = f"/admin/scheduler_app/team/{world.team.id}/change/"
    members = list(Membership.objects.filter(team=world.team).order_by("id"))
    data = {"name": "ops", "description": "", "memberships-TOTAL_FORMS": len(members),
            "memberships-INITIAL_FORMS": len(members), "memberships-MIN_NUM_FORMS": 0,
            "memberships-MAX_NUM_FORMS": 1000}  # fmt: skip
    for i, m in enumerate(members):
        data |= {f"memberships-{i}-id": m.id, f"memberships-{i}-team": world.team.id,
                 f"memberships-{i}-user": m.user_id, f"memberships-{i}-role": "viewer"}  # fmt: skip
    refused = world.browser("admin").post(page, data)
    assert refused.status_code == 200
    assert "at least one member with the role admin" in refused.content.decode()
    data[f"memberships-{members.index(Membership.objects.get(role='admin'))}-role"] = "admin"
    assert world.browser("admin").post(page, data).status_code == 302
    assert Membership.objects.filter(role="viewer").count() == 4
    assert world.browser("editor").post(page, data).status_code == 403


@pytest.mark.parametrize("user", ["viewer", "operator", "editor"])
def test_admin_bulk_delete_needs_the_editor_role(world, user):
    world.browser(user).post(
        "/admin/scheduler_app/job/",
        {"action": "delete_selected", "_selected_action": [world.http_job.id], "post": "yes"},
    )
    assert Job.objects.filter(pk=world.http_job.pk).exists() == ("edit" not in RIGHTS[user])


def test_admin_choices_hold_only_what_the_user_may_use(world):
    form = world.browser("editor").get("/admin/scheduler_app/job/add/").context["adminform"].form
    assert list(form.fields["team"].queryset) == [world.team]
    assert list(form.fields["calendar"].queryset) == [world.calendar]
    theirs = world.browser("outsider").get("/admin/scheduler_app/job/add/")
    form = theirs.context["adminform"].form
    assert not form.fields["team"].queryset.exists()
    assert not form.fields["calendar"].queryset.exists()


def test_the_admins_team_list_counts_every_member_for_any_member(world):
    """A member sees the whole team's size, not only their own membership."""
    members = world.team.memberships.count()
    for name in ("viewer", "admin"):
        page = world.browser(name).get("/admin/scheduler_app/team/").content.decode()
        assert f'<td class="field-member_count">{members}</td>' in page
