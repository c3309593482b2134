"""``schedule``, the console script, against a real HTTP server (pytest-django's
``live_server``) on the test database: what users type, what they see, exit codes."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from django.utils import timezone
from rest_framework.authtoken.models import Token

from scheduler_app.models import Job, Run
from tests.cli_runner import Schedule
from tests.helpers import create_job, manual_job, run_now

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def schedule(api, owner, live_server, tmp_path) -> Schedule:
    """The owner's ``schedule`` (their token, from the ``api`` fixture)."""
    return Schedule(live_server.url, Token.objects.get(user=owner).key, tmp_path)


def test_create_then_list_show_and_json_output(schedule, api):
    made = schedule(
        "create",
        "backup",
        "--command",
        "echo hi",
        "--schedule",
        "daily at 10:30",
        "--timezone",
        "Europe/Paris",
        "--retries",
        "2",
        "--timeout",
        "60",
        "--description",
        "nightly",
        "--tag",
        "ops",
        "-o",
        "json",
    )
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    stored = api.get(f"/api/v1/jobs/{job['id']}/").data
    assert (stored["kind"], stored["payload"]["command"], stored["schedule"]) == (
        "command",
        "echo hi",
        job["schedule"],
    )
    assert (stored["timezone"], stored["max_retries"], stored["timeout"]) == ("Europe/Paris", 2, 60)
    assert (stored["description"], stored["tags"], stored["enabled"]) == ("nightly", ["ops"], True)

    listed = schedule("list", "-o", "json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [job["id"]]
    assert yaml.safe_load(schedule("list", "-o", "yaml").stdout)[0]["name"] == "backup"
    table = schedule("list")
    assert table.returncode == 0
    assert "backup" in table.stdout and "active" in table.stdout and "ID" in table.stdout
    assert "\x1b[" not in table.stdout  # not a terminal: no colours

    by_name = schedule("show", "backup", "-o", "json")
    assert json.loads(by_name.stdout)["id"] == job["id"]
    assert "schedule_description" in schedule("show", str(job["id"])).stdout


def test_list_filters_and_follows_every_page(schedule, api, owner):
    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            owner=owner,
            name=f"bulk-{i:03}",
            payload={"command": "true"},
            schedule={"type": "manual"},
            tags=["bulk"] if i % 2 else [],
            schedule_start=now,
        )
        for i in range(510)  # more than a page of 500
    )
    manual_job(api, "nightly-report", "true", queue="reports")
    everything = json.loads(schedule("list", "-o", "json").stdout)
    assert len(everything) == 511 and len({job["id"] for job in everything}) == 511
    assert [
        j["name"] for j in json.loads(schedule("list", "--queue", "reports", "-o", "json").stdout)
    ] == ["nightly-report"]
    assert len(json.loads(schedule("list", "--tag", "bulk", "-o", "json").stdout)) == 255
    schedule("disable", "nightly-report")
    paused = json.loads(schedule("list", "--status", "paused", "-o", "json").stdout)
    assert [job["name"] for job in paused] == ["nightly-report"]
    assert schedule("list", "--status", "sleeping").returncode == 2  # usage


def test_enable_disable_next_preview_and_delete(schedule, api):
    job = create_job(api, name="often", payload={"command": "true"}, schedule="every 5 minutes")
    off = schedule("disable", "often", "-o", "json")
    assert json.loads(off.stdout)["status"] == "paused"
    assert api.get(f"/api/v1/jobs/{job['id']}/").data["enabled"] is False
    on = schedule("enable", str(job["id"]))
    assert on.returncode == 0 and "Enabled job" in on.stderr and "active" in on.stderr
    assert api.get(f"/api/v1/jobs/{job['id']}/").data["enabled"] is True

    upcoming = json.loads(schedule("next", "often", "--count", "3", "-o", "json").stdout)
    assert (
        upcoming["next_runs"]
        == api.get(f"/api/v1/jobs/{job['id']}/next-runs/?count=3").data["next_runs"]
    )
    everything = json.loads(schedule("next", "-o", "json").stdout)
    assert {item["job_name"] for item in everything["next_runs"]} == {"often"}

    preview = schedule(
        "preview", "0 9 * * 1-5", "--timezone", "Europe/Paris", "-n", "2", "-o", "json"
    )
    answer = json.loads(preview.stdout)
    assert len(answer["next_runs"]) == 2 and answer["next_runs_local"][0].endswith(
        ("+01:00", "+02:00")
    )
    assert "Europe/Paris" in schedule("preview", "0 9 * * 1-5", "--timezone", "Europe/Paris").stdout

    deleted = schedule("delete", "often")  # not a terminal: no question
    assert deleted.returncode == 0, deleted.stderr
    assert not Job.objects.filter(id=job["id"]).exists()
    assert schedule("delete", "often").returncode == 3


def test_another_users_job_is_not_found_and_shows_nothing(schedule, outsider_api):
    theirs = create_job(
        outsider_api,
        name="secret-job",
        kind="http",
        payload={"url": "https://example.com/private"},
        schedule="@daily",
    )
    for command in (
        ["show", str(theirs["id"])],
        ["run", str(theirs["id"])],
        ["history", str(theirs["id"])],
        ["delete", str(theirs["id"]), "--yes"],
        ["show", "secret-job"],
        ["edit", str(theirs["id"])],
    ):
        result = schedule(*command, "-o", "json", EDITOR="true")
        assert result.returncode == 3, (command, result.stderr)
        assert result.stdout == ""
        assert "example.com" not in result.stderr and "secret-job" not in result.stderr.replace(
            "'secret-job'", ""
        )
    assert Job.objects.filter(id=theirs["id"]).exists()
    assert schedule("logs", "999999").returncode == 3


def test_without_a_token_it_says_to_log_in_and_exits_4(schedule):
    missing = schedule("list", SCHEDULE_TOKEN=None)
    assert missing.returncode == 4
    assert "schedule login" in missing.stderr and missing.stdout == ""
    wrong = schedule("list", "--token", "0" * 40)
    assert wrong.returncode == 4 and "schedule login" in wrong.stderr


def test_an_unreachable_server_is_named(schedule):
    result = schedule("list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "http://127.0.0.1:9/api/v1/jobs/" in result.stderr and "Check the URL" in result.stderr


def test_api_errors_show_the_field(schedule):
    bad = schedule("create", "broken", "--command", "true", "--schedule", "every blue moon")
    assert bad.returncode == 1
    assert bad.stderr.startswith("schedule: ")
    payload = schedule(
        "create", "x", "--kind", "http", "--payload", '{"url": 5}', "--schedule", "@daily"
    )
    assert payload.returncode == 1 and "payload" in payload.stderr
    assert schedule("create", "x", "--command", "true").returncode == 2  # no --schedule
    not_json = schedule("create", "x", "--payload", "{oops", "--schedule", "@daily")
    assert not_json.returncode == 2 and "--payload" in not_json.stderr


def test_from_template(schedule, api):
    template = api.post(
        "/api/v1/templates/",
        {
            "name": "nightly",
            "defaults": {
                "payload": {"command": "echo from-template"},
                "schedule": "@daily",
                "queue": "batch",
            },
        },
        format="json",
    ).data
    made = schedule(
        "create", "from-t", "--from-template", "nightly", "--timeout", "30", "-o", "json"
    )
    assert made.returncode == 0, made.stderr
    job = api.get(f"/api/v1/jobs/{json.loads(made.stdout)['id']}/").data
    assert (job["payload"]["command"], job["queue"], job["timeout"]) == (
        "echo from-template",
        "batch",
        30,
    )
    assert schedule("create", "x", "--from-template", str(template["id"] + 99)).returncode == 3


def editor_script(tmp_path, body: str) -> str:
    """An $EDITOR: a Python script that rewrites the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import pathlib, sys\npath = pathlib.Path(sys.argv[1])\n"
        "text = path.read_text()\n" + textwrap.dedent(body)
    )
    return f"{__import__('sys').executable} {script}"


def test_edit_patches_what_the_editor_changed(schedule, api, tmp_path):
    job = manual_job(api, "tidy", "echo tidy")
    before = api.get(f"/api/v1/jobs/{job['id']}/").data
    rewrite = editor_script(
        tmp_path,
        """
        text = text.replace("echo tidy", "echo tidier").replace("description: ''",
                            "description: cleaned up")
        path.write_text(text)
    """,
    )
    edited = schedule("edit", "tidy", EDITOR=rewrite)
    assert edited.returncode == 0, edited.stderr
    after = api.get(f"/api/v1/jobs/{job['id']}/").data
    assert (after["payload"]["command"], after["description"]) == ("echo tidier", "cleaned up")
    assert {
        k: v for k, v in after.items() if k not in ("payload", "description", "updated_at")
    } == {k: v for k, v in before.items() if k not in ("payload", "description", "updated_at")}

    untouched = schedule("edit", "tidy", EDITOR="true", VISUAL=None)
    assert untouched.returncode == 0 and "No changes" in untouched.stderr
    assert api.get(f"/api/v1/jobs/{job['id']}/").data["updated_at"] == after["updated_at"]


def test_edit_shows_the_refused_field_and_saves_nothing(schedule, api, tmp_path):
    job = manual_job(api, "tidy", "echo tidy")
    breaker = editor_script(
        tmp_path,
        """
        path.write_text(text.replace("type: manual", "type: fortnightly"))
    """,
    )
    refused = schedule("edit", str(job["id"]), VISUAL=breaker)
    assert refused.returncode == 1
    assert "schedule: " in refused.stderr and "Nothing saved" in refused.stderr
    assert api.get(f"/api/v1/jobs/{job['id']}/").data["schedule"] == job["schedule"]
    not_yaml = editor_script(tmp_path, 'path.write_text("name: [unclosed")\n')
    assert schedule("edit", "tidy", EDITOR=not_yaml).returncode == 1


def test_history_follows_cursor_pages_up_to_the_limit(schedule, api):
    job = manual_job(api, "tidy", "true")
    first = run_now(api, job)
    for _ in range(2):
        run_now(api, job)
    Run.objects.bulk_create(
        Run(
            job_id=job["id"],
            trigger="manual",
            status="succeeded",
            scheduled_for=Run.objects.get(id=first).scheduled_for.replace(
                year=2020, day=1, hour=i // 60, minute=i % 60
            ),
        )
        for i in range(150)
    )
    runs = json.loads(schedule("history", "tidy", "--limit", "140", "-o", "json").stdout)
    assert len(runs) == 140 and len({run["id"] for run in runs}) == 140
    newest = json.loads(schedule("history", "tidy", "-n", "3", "-o", "json").stdout)
    assert [run["id"] for run in newest] == [
        run["id"] for run in api.get(f"/api/v1/jobs/{job['id']}/runs/?page_size=3").data["results"]
    ]
    table = schedule("history", "tidy", "-n", "3")
    assert "succeeded" in table.stdout and "manual" in table.stdout


def test_a_broken_config_file_is_named(schedule):
    path = schedule.home / ".config" / "cronfleet" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('url = "http://x\n')
    broken = schedule("list", SCHEDULE_TOKEN=None)
    assert broken.returncode == 1
    assert str(path) in broken.stderr and "schedule login" in broken.stderr


def test_every_command_has_help_with_an_example(tmp_path):
    anyone = Schedule("http://127.0.0.1:9", None, tmp_path)

    def listed(*group: str) -> list[str]:
        shown = anyone(*group, "--help").stdout
        return [line.split()[0] for line in shown.split("Commands:")[1].splitlines()
                if line.strip()]  # fmt: skip

    top = anyone("--help")
    commands = listed()
    assert len(commands) == 18 and "Exit codes" in top.stdout
    groups = {"files": 3, "software": 5}  # their commands: schedule files upload, ...
    for group, count in groups.items():
        assert len(listed(group)) == count, group
    commands = [c for c in commands if c not in groups]
    commands += [f"{group} {sub}" for group in groups for sub in listed(group)]
    for command in [*groups, *commands]:
        shown = anyone(*command.split(), "--help")
        assert shown.returncode == 0 and "Example" in shown.stdout, command
        if command not in ("login", *groups):
            assert "--output" in shown.stdout and "--url" in shown.stdout, command
