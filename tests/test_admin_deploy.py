"""The admin's pages for uploaded files and the software catalogue: listed as far as
access.py lets the viewer see, files never edited, neither deleted while a job uses it
(the API's reason shown), the catalogue judged by the API's rules and the code right."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler_app import deployment
from scheduler_app.models import Software, StoredFile
from tests.helpers import files_stored_in, make_job
from tests.test_permissions import RIGHTS
from tests.world import USERS

FILES = "/admin/scheduler_app/storedfile/"
SOFTWARE = "/admin/scheduler_app/software/"
SHA = "ab12cd34ef56" + "0" * 52


@pytest.fixture(autouse=True)
def file_storage(settings, tmp_path):
    return files_stored_in(settings, tmp_path / "files")


def stored(owner, name: str = "nginx.conf", team=None) -> StoredFile:
    storage_name = deployment.store(ContentFile(b"x" * 2048, name=name))
    return StoredFile.objects.create(owner=owner, team=team, name=name, size=2048,
                                     sha256=SHA, storage_name=storage_name)  # fmt: skip


def file_job(owner, name: str, file_ids: list[int], team=None):
    payload = {"files": file_ids, "target_path": "/srv/conf"}
    return make_job(owner, name=name, kind="file", payload=payload, team=team)


@pytest.fixture
def shared(world) -> StoredFile:
    """A team file used by a team job and by a job of its owner's that is not the team's."""
    row = stored(world.users["admin"], team=world.team)
    file_job(world.users["admin"], "deploy-nginx", [row.pk], team=world.team)
    file_job(world.users["admin"], "admins-own", [row.pk])
    return row


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_the_file_list_shows_size_short_sha_owner_team_and_the_jobs_using_it(world, shared):
    html = page(world.browser("viewer"), FILES)
    assert "nginx.conf" in html and "2.0\xa0KB (2048 bytes)" in html
    assert f'title="{SHA}">ab12cd34ef56<' in html
    assert ">admin<" in html and ">ops<" in html
    assert ">deploy-nginx</a>" in html
    assert "admins-own" not in html and "1 of others&#x27;" in html  # not the viewer's to read
    assert "admins-own</a>" in page(world.browser("admin"), FILES)


@pytest.mark.parametrize("user", USERS)
def test_each_role_sees_and_deletes_files_and_edits_the_catalogue_as_access_allows(world, user):
    """As the API: a team row is viewed by its members, a file deleted with the edit
    right, a catalogue entry changed with the edit right and the code right."""
    row = stored(world.users["admin"], team=world.team)
    nginx = entry(world)
    client = world.browser(user)
    for listing, pk in ((FILES, row.pk), (SOFTWARE, nginx.pk)):
        html = page(client, listing)
        assert (f"{listing}{pk}/change/" in html) == (user != "outsider"), (user, listing)
    if user == "outsider":
        return
    deletes = client.get(f"{FILES}{row.pk}/delete/").status_code
    assert deletes == (200 if "edit" in RIGHTS[user] else 403), user
    changes = 'name="_save"' in page(client, f"{SOFTWARE}{nginx.pk}/change/")
    assert changes == (user in ("root", "admin", "coder")), user


def test_files_others_may_not_view_are_not_listed_nor_shown(world, shared):
    outsider = world.browser("outsider")
    assert "nginx.conf" not in page(outsider, FILES)
    assert outsider.get(f"{FILES}{shared.pk}/change/").status_code == 302  # "does not exist"


def test_a_file_is_never_added_nor_edited(world, shared):
    client = world.browser("root")
    assert client.get(f"{FILES}add/").status_code == 403
    html = page(client, f"{FILES}{shared.pk}/change/")
    assert 'name="_save"' not in html and 'name="name"' not in html
    assert "deploy-nginx</a>" in html and "admins-own</a>" in html
    client.post(f"{FILES}{shared.pk}/change/", {"name": "other.conf"})
    shared.refresh_from_db()
    assert shared.name == "nginx.conf"


def test_a_file_in_use_is_not_deleted_and_the_page_says_why(world, shared, file_storage):
    client = world.browser("admin")
    delete = f"{FILES}{shared.pk}/delete/"
    said = f"file {shared.pk} (nginx.conf) is used by jobs: admins-own, deploy-nginx; change them"
    assert said in page(client, delete)
    client.post(delete, {"post": "yes"})
    assert StoredFile.objects.filter(pk=shared.pk).exists()
    bulk = {"action": "delete_selected", "_selected_action": [shared.pk], "post": "yes"}
    assert "change them first" in client.post(FILES, bulk).content.decode()
    assert StoredFile.objects.filter(pk=shared.pk).exists()


def test_a_file_no_job_uses_is_deleted_with_its_bytes(
    world, shared, file_storage, django_capture_on_commit_callbacks
):
    world.users["admin"].jobs.filter(kind="file").delete()
    client = world.browser("admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{FILES}{shared.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not StoredFile.objects.filter(pk=shared.pk).exists()
    assert not (file_storage / shared.storage_name).exists()


def test_deleting_a_file_needs_the_edit_right(world, shared):
    world.users["admin"].jobs.filter(kind="file").delete()
    viewer = world.browser("viewer")
    assert viewer.get(f"{FILES}{shared.pk}/delete/").status_code == 403
    viewer.post(f"{FILES}{shared.pk}/delete/", {"post": "yes"})
    assert StoredFile.objects.filter(pk=shared.pk).exists()


def test_the_file_list_reads_the_same_queries_for_more_rows(world, shared):
    client = world.browser("viewer")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page(client, FILES)
        return len(captured)

    few = queries()
    for index in range(5):
        row = stored(world.users["admin"], f"more-{index}.conf", team=world.team)
        file_job(world.users["admin"], f"more-{index}", [row.pk], team=world.team)
    assert queries() == few


# --- the software catalogue -------------------------------------------------------


def entry(world, **fields) -> Software:
    values = {"name": "nginx", "version": "1.24", "install": "apt-get install -y nginx",
              "check_command": "nginx -v", **fields}  # fmt: skip
    return Software.objects.create(owner=world.users["admin"], team=world.team, **values)


def form(**fields) -> dict[str, str]:
    values = {"name": "httpie", "description": "", "version": "3.2", "install": "",
              "pip": "httpie", "check_command": "http --version", "uninstall": ""}  # fmt: skip
    return {**values, **fields}


def test_the_catalogue_list_and_page_show_its_entries_and_the_jobs_installing_them(world):
    nginx = entry(world)
    make_job(world.users["admin"], name="web-rollout", kind="software", team=world.team,
             payload={"packages": [{"software": nginx.pk}]})  # fmt: skip
    html = page(world.browser("viewer"), SOFTWARE)
    assert "nginx" in html and "1.24" in html and "install command" in html
    assert "web-rollout</a>" in html
    change = page(world.browser("viewer"), f"{SOFTWARE}{nginx.pk}/change/")
    assert 'name="_save"' not in change and "web-rollout</a>" in change
    assert "nginx" not in page(world.browser("outsider"), SOFTWARE)


def test_a_coder_adds_an_entry_and_the_apis_rules_judge_it(world):
    client = world.browser("coder")
    made = client.post(f"{SOFTWARE}add/", form())
    assert made.status_code == 302, made.context["adminform"].form.errors
    created = Software.objects.get(name="httpie")
    assert (created.owner, created.pip, created.check_command) == (
        world.users["coder"], "httpie", "http --version")  # fmt: skip
    bad = client.post(f"{SOFTWARE}add/", form(name="bad", version="1 2", pip="no way"))
    errors = bad.context["adminform"].form.errors.get_json_data()
    assert "must be a version such as 1.2.3" in errors["version"][0]["message"]
    assert "'pip' must be a project name" in errors["pip"][0]["message"]
    both = client.post(f"{SOFTWARE}add/", form(name="bad", install="make install"))
    errors = both.context["adminform"].form.errors.get_json_data()
    assert "give either 'install'" in errors["install"][0]["message"]
    assert not Software.objects.filter(name="bad").exists()
    empty = client.post(f"{SOFTWARE}add/", form(name="silent", check_command=" "))
    assert "check_command" in empty.context["adminform"].form.errors
    assert not Software.objects.filter(name="silent").exists()


def test_without_the_code_right_the_catalogue_is_read_only(world):
    nginx = entry(world)
    editor = world.browser("editor")  # an editor of the team, without the code right
    assert editor.get(f"{SOFTWARE}add/").status_code == 403
    html = page(editor, f"{SOFTWARE}{nginx.pk}/change/")
    assert 'name="_save"' not in html
    editor.post(f"{SOFTWARE}{nginx.pk}/change/", form(name="nginx", version="9.9"))
    assert editor.get(f"{SOFTWARE}{nginx.pk}/delete/").status_code == 403
    nginx.refresh_from_db()
    assert nginx.version == "1.24"
    coder = world.browser("coder")
    saved = coder.post(f"{SOFTWARE}{nginx.pk}/change/",
                       form(name="nginx", version="1.26", team=str(world.team.pk)))  # fmt: skip
    assert saved.status_code == 302
    nginx.refresh_from_db()
    assert nginx.version == "1.26"


def test_an_entry_a_job_installs_is_not_deleted_and_the_page_says_why(world):
    nginx = entry(world)
    job = make_job(world.users["admin"], name="web-rollout", kind="software",
                   team=world.team, payload={"packages": [{"software": nginx.pk}]})  # fmt: skip
    client = world.browser("coder")
    delete = f"{SOFTWARE}{nginx.pk}/delete/"
    assert "software" in page(client, delete) and "web-rollout; change them first" in page(
        client, delete
    )
    client.post(delete, {"post": "yes"})
    assert Software.objects.filter(pk=nginx.pk).exists()
    job.delete()
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Software.objects.filter(pk=nginx.pk).exists()
