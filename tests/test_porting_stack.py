"""An imported crontab line runs on the real stack (worker and beat), as cron would."""

from __future__ import annotations

import pytest

from scheduler_app.models import Job, Run
from tests.helpers import wait_runs

pytestmark = pytest.mark.stack


def test_an_imported_every_minute_crontab_line_runs_with_its_stdin(live, api, owner):
    content = "# shout what cron pipes in\n* * * * * tr a-z A-Z%piped in%by cron\n"
    response = api.post("/api/v1/import/", {"format": "crontab", "content": content},
                        format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    [item] = response.json()["items"]
    assert item["action"] == "create", item
    job = Job.objects.get(owner=owner, name=item["name"])
    assert job.description == "shout what cron pipes in"
    [run] = wait_runs(job.pk, 1, timeout=90, status=Run.Status.SUCCEEDED)
    assert run.trigger == "schedule"
    assert run.scheduled_for.isoformat().replace("+00:00", "Z") == item["next_runs"][0]
    assert "PIPED IN\nBY CRON" in run.output
