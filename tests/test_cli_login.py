"""``schedule`` in a real pseudo-terminal: login (the prompts, the hidden password, the
config file (mode 0600, its directory 0700) that the other commands and the VS Code
extension read), colours only where they belong, and the questions asked there (delete,
edit)."""

from __future__ import annotations

import stat
import sys
import textwrap
import tomllib

import pexpect
import pytest
from rest_framework.authtoken.models import Token

from scheduler_app.models import Job
from tests.cli_runner import SCHEDULE, Schedule

pytestmark = pytest.mark.usefixtures("transactional_db")
PASSWORD = "alice-password-1"  # the owner fixture's


def spawn(schedule: Schedule, *args: str, **env: str | None) -> pexpect.spawn:
    return pexpect.spawn(
        SCHEDULE,
        list(args),
        env=schedule.environment(**env),
        cwd=str(schedule.home),
        encoding="utf-8",
        timeout=30,
    )


@pytest.fixture
def schedule(owner, live_server, tmp_path) -> Schedule:
    """Nobody logged in yet: no token anywhere."""
    return Schedule(live_server.url, None, tmp_path)


def test_login_asks_hides_the_password_and_keeps_the_token_private(schedule, owner):
    terminal = spawn(schedule, "login", schedule.url, SCHEDULE_URL=None)
    terminal.expect("Username: ")
    terminal.sendline("alice")
    terminal.expect("Password: ")
    terminal.sendline(PASSWORD)
    terminal.expect(pexpect.EOF)
    terminal.close()
    shown = terminal.before
    assert terminal.exitstatus == 0, shown
    assert PASSWORD not in shown  # not echoed
    assert f"Logged in to {schedule.url} as alice" in shown

    path = schedule.home / ".config" / "cronfleet" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = tomllib.loads(path.read_text())
    assert stored == {"url": schedule.url, "token": Token.objects.get(user=owner).key}
    # The other commands read it: no SCHEDULE_URL, no SCHEDULE_TOKEN.
    listed = schedule("list", "-o", "json", SCHEDULE_URL=None, SCHEDULE_TOKEN=None)
    assert (listed.returncode, listed.stdout) == (0, "[]\n"), listed.stderr
    # The environment overrides the file.
    wrong = schedule("list", SCHEDULE_URL=None, SCHEDULE_TOKEN="0" * 40)
    assert wrong.returncode == 4


def test_login_keeps_other_keys_and_asks_for_the_url(schedule):
    path = schedule.home / ".config" / "cronfleet" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('theme = "dark"\nurl = "http://old.example"\ntoken = "old"\n')
    path.chmod(0o644)
    terminal = spawn(schedule, "login", "--username", "alice", SCHEDULE_URL=None)
    terminal.expect(r"Server URL \[http://old.example\]: ")
    terminal.sendline(schedule.url)
    terminal.expect("Password: ")
    terminal.sendline(PASSWORD)
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0, terminal.before
    stored = tomllib.loads(path.read_text())
    assert (stored["theme"], stored["url"], len(stored["token"])) == ("dark", schedule.url, 40)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wrong_password_is_refused_and_nothing_is_written(schedule):
    terminal = spawn(schedule, "login", schedule.url, "-u", "alice")
    terminal.expect("Password: ")
    terminal.sendline("not-the-password")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 4
    assert "wrong username or password" in terminal.before
    assert not (schedule.home / ".config" / "cronfleet" / "config.toml").exists()


def test_colours_on_a_terminal_and_never_with_no_color(schedule, owner, api):
    api.post(
        "/api/v1/jobs/",
        {"name": "tidy", "payload": {"command": "true"}, "schedule": "@daily"},
        format="json",
    )
    token = Token.objects.get(user=owner).key
    coloured = spawn(schedule, "list", SCHEDULE_TOKEN=token)
    coloured.expect(pexpect.EOF)
    assert "tidy" in coloured.before and "\x1b[32mactive" in coloured.before  # green
    plain = spawn(schedule, "list", SCHEDULE_TOKEN=token, NO_COLOR="1")
    plain.expect(pexpect.EOF)
    assert "tidy" in plain.before and "\x1b[" not in plain.before


def test_delete_asks_on_a_terminal(schedule, owner, api):
    job = api.post(
        "/api/v1/jobs/",
        {"name": "tidy", "payload": {"command": "true"}, "schedule": "@daily"},
        format="json",
    ).data
    token = Token.objects.get(user=owner).key
    declined = spawn(schedule, "delete", "tidy", SCHEDULE_TOKEN=token)
    declined.expect(rf"Delete job {job['id']} \(tidy\) and its runs\? \[y/N\]: ")
    declined.sendline("n")
    declined.expect(pexpect.EOF)
    declined.close()
    assert declined.exitstatus == 1 and Job.objects.filter(id=job["id"]).exists()
    accepted = spawn(schedule, "delete", "tidy", SCHEDULE_TOKEN=token)
    accepted.expect(r"\[y/N\]: ")
    accepted.sendline("y")
    accepted.expect(pexpect.EOF)
    accepted.close()
    assert accepted.exitstatus == 0 and not Job.objects.filter(id=job["id"]).exists()


def test_edit_on_a_terminal_reopens_the_editor_with_the_text_kept(schedule, owner, api, tmp_path):
    job = api.post(
        "/api/v1/jobs/",
        {"name": "tidy", "payload": {"command": "true"}, "schedule": "@daily"},
        format="json",
    ).data
    # First save: a zone that does not exist. Second: the refusal is in the text as a
    # comment, and the bad zone still there (kept); it is fixed.
    editor = tmp_path / "editor.py"
    editor.write_text(
        textwrap.dedent(f"""
        import pathlib, sys
        path, seen = pathlib.Path(sys.argv[1]), pathlib.Path({str(tmp_path / "seen")!r})
        text = path.read_text()
        if not seen.exists():
            seen.write_text(text)
            path.write_text(text.replace("timezone: UTC", "timezone: Mars/Olympus"))
        else:
            seen.write_text(text)
            path.write_text(text.replace("Mars/Olympus", "Europe/Berlin"))
    """)
    )
    terminal = spawn(
        schedule,
        "edit",
        "tidy",
        SCHEDULE_TOKEN=Token.objects.get(user=owner).key,
        EDITOR=f"{sys.executable} {editor}",
    )
    terminal.expect(r"timezone: unknown time zone 'Mars/Olympus'.*\r\n")
    terminal.expect(r"Open the editor again \(your text is kept\)\? \[Y/n\]: ")
    terminal.sendline("")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0, terminal.before
    second_time = (tmp_path / "seen").read_text()
    assert second_time.startswith("# ! timezone: unknown time zone 'Mars/Olympus'")
    assert "timezone: Mars/Olympus" in second_time
    assert api.get(f"/api/v1/jobs/{job['id']}/").data["timezone"] == "Europe/Berlin"
