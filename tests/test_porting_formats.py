"""Each import format against the program it comes from: a crontab's previews against
cronsim (a cron written apart from ours), Kubernetes CronJob fields, and a Celery
beat_schedule against real ``celery.schedules.crontab`` objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from celery import Celery
from celery.schedules import crontab
from cronsim import CronSim

from scheduler_app.models import Job
from scheduler_app.schedules import build, upcoming

IMPORT = "/api/v1/import/"
# cronsim reads five fields only: the @ forms as Vixie cron defines them.
ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}  # fmt: skip

CRONTAB = """\
# m h dom mon dow command
MAILTO=ops@example.com
SHELL=/bin/bash

# every quarter of an hour
*/15 * * * * echo quarter
0 */2 * * * echo two-hourly
30 6 * * 1-5 echo weekdays
0 0 13 * 5 echo friday-or-13th
0 0 */2 * 1 echo odd-day-mondays
15 10 1,15 * * echo fortnight
0 9 * jan,jul mon echo january-july-mondays
5 4 * * sun echo sunday
0 12 * * 7 echo sunday-seven
@hourly echo hourly
@daily echo daily
@weekly echo weekly
@monthly echo monthly
@yearly echo yearly
@reboot echo boot
CRON_TZ=America/New_York
30 2 * * * echo new-york
0 8-18/3 * * mon-fri echo steps
TZ=Asia/Kolkata
0 0 1-7 * 1 echo first-week-or-monday
1-5/2 3 * * * echo range-step
0 0 31 * * echo thirty-first
@midnight echo midnight
"""


def post(api, fmt: str, content: str, **options) -> dict:
    response = api.post(IMPORT, {"format": fmt, "content": content, **options}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def moments(texts: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(text.replace("Z", "+00:00")) for text in texts]


def cron_fires(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    sim = CronSim(ALIASES.get(expression, expression), after.astimezone(ZoneInfo(zone)))
    return [next(sim).astimezone(UTC) for _ in range(count)]


# --- crontab ----------------------------------------------------------------------------


def test_a_20_line_crontab_previews_what_cron_runs(api, owner):
    before = datetime.now(UTC).replace(microsecond=0)
    report = post(api, "crontab", CRONTAB, dry_run=True)
    items = report["items"]
    assert report["summary"] == {"create": 20, "update": 0, "unchanged": 0, "refused": 1}
    lines = CRONTAB.splitlines()
    zone = "UTC"
    by_line = {item["line"]: item for item in items}
    checked = 0
    for number, line in enumerate(lines, 1):
        if line.startswith(("CRON_TZ=", "TZ=")):
            zone = line.split("=", 1)[1]
        item = by_line.get(number)
        if item is None or item["action"] == "refused":
            continue
        expression = line.split()[0] if line.startswith("@") else " ".join(line.split()[:5])
        expected = cron_fires(expression, zone, before, 4)
        shown = moments(item["next_runs"])
        # The request may have started a minute after ``before``: then one later.
        assert shown in (expected[:3], expected[1:]), (line, shown, expected)
        checked += 1
    assert checked == 20
    assert Job.objects.count() == 0


def test_crontab_fields_environment_comments_and_names(api, owner):
    report = post(api, "crontab", CRONTAB)
    first = Job.objects.get(owner=owner, name="echo-quarter")
    assert first.description == "every quarter of an hour"
    assert first.payload == {"command": "echo quarter", "shell": "/bin/bash"}
    assert first.notify_emails == ["ops@example.com"]
    assert first.concurrency_policy == "allow" and first.catchup == "skip"
    assert Job.objects.get(owner=owner, name="echo-new-york").timezone == "America/New_York"
    assert Job.objects.get(owner=owner, name="echo-range-step").timezone == "Asia/Kolkata"
    assert Job.objects.get(owner=owner, name="echo-weekdays").description == ""
    boot = next(item for item in report["items"] if item["action"] == "refused")
    assert boot["line"] == 20 and "@reboot is not supported" in boot["errors"]["schedule"][0]
    # Stable names: the same file imported again changes nothing.
    assert post(api, "crontab", CRONTAB)["summary"]["unchanged"] == 20


def test_percent_path_env_and_duplicate_commands(api, owner):
    content = (
        "PATH=/opt/tools/bin:/usr/bin\nLD_PRELOAD=/tmp/evil.so\nGREETING=hello\n"
        "* * * * * cat -n %first line%second \\% line\n"
        "0 1 * * * echo same\n0 2 * * * echo same\n"
    )
    report = post(api, "crontab", content)
    items = report["items"]
    assert [i["action"] for i in items] == ["create"] * 3
    assert items[1]["name"] != items[2]["name"] and items[1]["name"].startswith("echo-same-")
    job = Job.objects.get(owner=owner, name=items[0]["name"])
    assert job.env == {"GREETING": "hello"}
    assert job.payload["command"] == (
        "PATH=/opt/tools/bin:/usr/bin; export PATH; "
        "printf '%s' 'first line\nsecond % line' | ( cat -n  )"
    )
    warnings = " ".join(items[0]["warnings"])
    assert "LD_PRELOAD" in warnings and "PATH" in warnings and "standard input" in warnings


def test_a_system_crontab_is_detected_and_its_user_field_skipped(api, owner):
    content = "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n" \
              "@daily www-data /usr/bin/php /srv/cron.php\n"  # fmt: skip
    report = post(api, "crontab", content, dry_run=True)
    assert [i["name"] for i in report["items"]] == ["cd", "php-cron-php"]
    assert "root" in report["items"][0]["warnings"][0]
    forced = post(api, "crontab", "0 1 * * * backup /srv\n", crontab_system=True, dry_run=True)
    assert forced["items"][0]["name"] == "srv"


def test_crontab_lines_cron_would_refuse_are_refused(api):
    content = (
        "61 * * * * echo bad-minute\n* * * echo short\n@every echo no\n0 0 30 2 * echo feb30\n"
    )
    report = post(api, "crontab", content, dry_run=True)
    assert [i["action"] for i in report["items"]] == ["refused"] * 4
    assert "minute" in report["items"][0]["errors"]["schedule"][0]


# --- kubernetes -------------------------------------------------------------------------

MANIFESTS = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
  labels: {team: data, tier: batch}
spec:
  schedule: "30 2 * * 1-5"
  timeZone: Europe/Paris
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  suspend: true
  successfulJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: 1800
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: registry.example.com/report:1.4
            command: ["/bin/sh", "-c"]
            args: ["python report.py --day \\"$(date +%F)\\" && echo done"]
            env:
            - {name: MODE, value: full}
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
---
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: cleanup}
  spec:
    schedule: "CRON_TZ=America/New_York */10 * * * *"
    concurrencyPolicy: Replace
    jobTemplate:
      spec:
        template:
          spec:
            containers:
            - {name: c, image: busybox, command: [rm, -rf, /tmp/cache dir]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: entrypoint-only}
spec:
  schedule: "@hourly"
  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: alpine}]}}}}
"""


def test_kubernetes_cronjobs(api, owner):
    before = datetime.now(UTC).replace(microsecond=0)
    report = post(api, "kubernetes", MANIFESTS)
    items = report["items"]
    assert [(i["line"], i["name"], i["action"]) for i in items] == [
        (1, "nightly-report", "create"), (2, "cleanup", "create"), (3, "web", "refused"),
        (4, "settings", "refused"), (5, "entrypoint-only", "refused"),
    ]  # fmt: skip
    assert "only CronJobs" in items[2]["errors"]["kind"][0]
    assert "entrypoint" in items[4]["errors"]["payload"][0]
    report_job = Job.objects.get(owner=owner, name="nightly-report")
    assert report_job.schedule == {"type": "cron", "expression": "30 2 * * 1-5"}
    assert report_job.timezone == "Europe/Paris"
    assert report_job.concurrency_policy == "forbid" and report_job.misfire_grace == 300
    assert report_job.enabled is False and report_job.timeout == 1800
    assert report_job.max_retries == 2 and report_job.tags == ["team=data", "tier=batch"]
    assert report_job.payload["command"] == (
        "/bin/sh -c 'python report.py --day \"$(date +%F)\" && echo done'"
    )
    assert report_job.env == {"MODE": "full"}
    warnings = " ".join(items[0]["warnings"])
    for word in ("registry.example.com/report:1.4", "DB_PASSWORD", "successfulJobsHistoryLimit"):
        assert word in warnings
    assert items[0]["next_runs"] == []  # suspended
    cleanup = Job.objects.get(owner=owner, name="cleanup")
    assert cleanup.timezone == "America/New_York" and cleanup.concurrency_policy == "replace"
    assert cleanup.payload["command"] == "rm -rf '/tmp/cache dir'"
    assert cleanup.max_retries == 6  # Kubernetes' default backoffLimit
    expected = cron_fires("*/10 * * * *", "America/New_York", before, 4)
    assert moments(items[1]["next_runs"]) in (expected[:3], expected[1:])
    # The suspended job's fire times, once resumed, are cron's in its zone.
    fires = upcoming(build(report_job.schedule, ZoneInfo("Europe/Paris"), before), before, 5)
    assert fires == cron_fires("30 2 * * 1-5", "Europe/Paris", before, 5)


# --- celery -----------------------------------------------------------------------------

CELERY_APP = Celery(set_as_current=False)
CELERY_APP.conf.timezone = "Europe/Paris"
CRONTABS = {
    "every-five": {"minute": "*/5"},
    "monday-morning": {"minute": 30, "hour": 9, "day_of_week": 1},
    "sunday-by-name": {"minute": 0, "hour": "4", "day_of_week": "sun"},
    "weekdays": {"minute": "0,30", "hour": "8-18/2", "day_of_week": "mon-fri"},
    "first-monday": {"minute": 0, "hour": 7, "day_of_week": 1, "day_of_month": "1-7"},
    "first-and-third-friday": {
        "minute": 0,
        "hour": 12,
        "day_of_week": "fri",
        "day_of_month": "1-7,15-21",
    },
    "quarterly": {"minute": 0, "hour": 0, "day_of_month": 1, "month_of_year": "*/3"},
    "lists": {"minute": [5, 35], "hour": [1, 13], "day_of_month": [1, 15]},
    # Both day fields restricted: Celery wants both, which cron says with a * first.
    "first-or-fifteenth-if-monday": {
        "minute": 0,
        "hour": 6,
        "day_of_month": "1,15",
        "day_of_week": "mon",
    },
    "odd-days-on-sunday-or-wednesday": {
        "minute": 0,
        "hour": 22,
        "day_of_month": "*/2",
        "day_of_week": "sun,wed",
    },
    "sundays-in-the-second-half": {
        "minute": 0,
        "hour": 9,
        "day_of_month": "16-31",
        "day_of_week": "0,6",
    },
}


def celery_fires(fields: dict, after: datetime, count: int) -> list[datetime]:
    """The next fire times of a real celery.schedules.crontab, as beat finds them: it
    waits the time ``remaining_estimate`` gives (real seconds) after each."""
    fires, moment = [], after.astimezone(ZoneInfo("Europe/Paris"))
    for _ in range(count):
        spec = crontab(**fields, app=CELERY_APP, nowfun=lambda at=moment: at)
        fire = moment.astimezone(UTC) + spec.remaining_estimate(moment)
        fires.append(fire)
        moment = fire.astimezone(ZoneInfo("Europe/Paris"))
    return fires


def beat_dump(entries: dict) -> str:
    return json.dumps({"timezone": "Europe/Paris", "beat_schedule": entries})


def test_celery_crontabs_fire_when_celery_would(api, owner):
    entries = {name: {"task": "workers.echo", "schedule": {"crontab": fields},
                      "args": [name], "kwargs": {}, "options": {"queue": "celery-jobs"}}
               for name, fields in CRONTABS.items()}  # fmt: skip
    report = post(api, "celery", beat_dump(entries))
    assert report["summary"]["create"] == len(CRONTABS), report
    assert [item["line"] for item in report["items"]] == list(range(1, len(CRONTABS) + 1))
    starts = [datetime(2026, 11, 28, 18, 7, tzinfo=UTC), datetime(2027, 3, 27, 23, 59, tzinfo=UTC),
              datetime(2027, 12, 31, 12, 0, tzinfo=UTC)]  # fmt: skip
    for name, fields in CRONTABS.items():
        job = Job.objects.get(owner=owner, name=name)
        assert job.kind == "celery" and job.queue == "celery-jobs"
        assert job.payload == {"task": "workers.echo", "args": [name], "kwargs": {}}
        for start in starts:
            ours = upcoming(build(job.schedule, ZoneInfo(job.timezone), start), start, 6)
            assert ours == celery_fires(fields, start, 6), (name, job.schedule, start)


def test_celery_intervals_and_refusals(api, owner):
    entries = {
        "half-minute": {"task": "workers.echo", "schedule": 30},
        "five-minutes": {"task": "workers.echo", "schedule": 300.0, "relative": True},
        "sub-second": {"task": "workers.echo", "schedule": 0.5},
        "unknown-task": {"task": "proj.tasks.add", "schedule": 60},
        "and-rule": {"task": "workers.echo", "schedule": {"crontab": {
            "day_of_week": "mon", "day_of_month": "2-6,20"}}},
        "bad-field": {"task": "workers.echo", "schedule": {"crontab": {"minute": "99"}}},
        "solar": {"task": "workers.echo", "schedule": {"solar": ["sunset", 48.8, 2.3]}},
    }  # fmt: skip
    items = post(api, "celery", beat_dump(entries))["items"]
    assert [i["action"] for i in items] == ["create", "create"] + ["refused"] * 5
    assert Job.objects.get(owner=owner, name="half-minute").schedule == {
        "type": "interval", "every": 30, "unit": "seconds"}  # fmt: skip
    assert "relative is not honoured." in items[1]["warnings"]
    assert "registered Celery task" in items[3]["errors"]["payload"][0]
    assert "both day_of_month and day_of_week" in items[4]["errors"]["schedule"][0]
    assert "Celery cannot read" in items[5]["errors"]["schedule"][0]


def test_celery_jobs_need_the_code_right(world):
    dump = beat_dump({"t": {"task": "workers.echo", "schedule": 60}})
    response = world.api("editor").post(IMPORT, {"format": "celery", "content": dump},
                                        format="json")  # fmt: skip
    assert response.json()["items"][0]["action"] == "refused"


def test_nothing_is_written_by_a_refused_file(api):
    before = Job.objects.count()
    assert api.post(IMPORT, {"format": "celery", "content": "{}"}, format="json").status_code == 400
    assert Job.objects.count() == before
