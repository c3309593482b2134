"""``schedule export`` and ``schedule import`` against the real endpoints (GET
/api/v1/export/ and POST /api/v1/import/) on ``live_server``. tests/test_cli_porting.py
checks what the CLI sends and how it asks, against a loopback server that records it."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from rest_framework.authtoken.models import Token

from scheduler_app.models import Job
from tests.cli_runner import Schedule
from tests.helpers import create_job

pytestmark = pytest.mark.usefixtures("transactional_db")

CRONTAB = """\
MAILTO=ops@example.com
# poll the feeds
*/5 * * * * /usr/bin/poll feeds
@reboot /usr/bin/warm
30 2 * * 1-5 /usr/bin/backup --all
"""
BEAT = """
from datetime import timedelta
from celery.schedules import crontab, solar
timezone = "Europe/Paris"
beat_schedule = {
    "echo-every-5": {"task": "workers.echo", "schedule": crontab(minute="*/5"), "args": [1]},
    "echo-often": {"task": "workers.echo", "schedule": timedelta(seconds=30)},
    "at-dawn": {"task": "workers.echo", "schedule": solar("dawn_civil", 48.8, 2.3)},
}
"""


@pytest.fixture
def schedule(api, owner, live_server, tmp_path) -> Schedule:
    return Schedule(live_server.url, Token.objects.get(user=owner).key, tmp_path)


def test_export_then_import_changes_nothing(schedule, api):
    create_job(api, name="backup", payload={"command": "echo hi"}, schedule="daily at 10:30")
    create_job(api, name="other", payload={"command": "true"}, schedule="@hourly")
    as_json = schedule("export", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert sorted(job["name"] for job in json.loads(as_json.stdout)["jobs"]) == ["backup", "other"]
    one = json.loads(schedule("export", "-o", "json", "--job", "backup").stdout)
    assert [job["name"] for job in one["jobs"]] == ["backup"]
    as_yaml = schedule("export")
    assert yaml.safe_load(as_yaml.stdout)["cronfleet"] == 1
    (schedule.home / "export.yaml").write_text(as_yaml.stdout)
    again = schedule("import", "export.yaml", "--dry-run", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"]["unchanged"] == 2


def test_a_crontab_is_planned_then_applied(schedule):
    (schedule.home / "crontab.txt").write_text(CRONTAB)
    planned = schedule("import", "crontab.txt", "--dry-run")
    assert planned.returncode == 1  # @reboot
    assert "@reboot is not supported" in planned.stdout and "refused" in planned.stdout
    assert not Job.objects.exists()
    applied = schedule("import", "crontab.txt", "--yes", "-o", "json")
    assert applied.returncode == 1
    assert json.loads(applied.stdout)["summary"]["create"] == 2
    assert Job.objects.count() == 2


def test_a_beat_schedule_module_is_read_here(schedule):
    (schedule.home / "beatconf.py").write_text(textwrap.dedent(BEAT))
    applied = schedule("import", "--format", "celery", "beatconf", "--yes", "-o", "json")
    assert applied.returncode == 1, applied.stderr  # the solar one
    answer = json.loads(applied.stdout)
    assert (answer["summary"]["create"], answer["summary"]["refused"]) == (2, 1)
    assert set(Job.objects.values_list("kind", "timezone")) == {("celery", "Europe/Paris")}
