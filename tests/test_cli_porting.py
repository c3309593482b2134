"""``schedule export`` and ``schedule import`` against a loopback HTTP server that answers
the contract of GET /api/v1/export/ and POST /api/v1/import/ (being built on the branch
``porting``): what the CLI sends, what it shows, how it exits.

When those endpoints land, these tests are to run against ``live_server`` instead.
"""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pexpect
import pytest
import yaml

from tests.cli_runner import SCHEDULE, Schedule

EXPORTED = {
    "cronfleet": 1,
    "exported_at": "2026-11-28T10:00:00Z",
    "jobs": [
        {
            "name": "backup",
            "schedule": "@daily",
            "kind": "command",
            "payload": {"command": "tar czf /tmp/b.tgz /srv"},
        }
    ],
    "templates": [],
    "calendars": [],
}


# Page 1's link to page 2 names another host (a proxy's inside name, or a hostile
# server's): the CLI asks its own server for page 2, and sends its token nowhere else.
JOB_PAGES = {
    "1": {
        "count": 2,
        "next": "http://127.0.0.2:9/api/v1/jobs/?page=2&page_size=500",
        "previous": None,
        "results": [{"id": 1, "name": "one"}],
    },
    "2": {"count": 2, "next": None, "previous": "x", "results": [{"id": 2, "name": "two"}]},
    # A server whose pages go round: page 3 links to itself.
    "3": {
        "count": 9,
        "next": "http://h/api/v1/jobs/?page=3",
        "previous": None,
        "results": [{"id": 3, "name": "three"}],
    },
}


def plan_for(body: dict[str, Any]) -> dict[str, Any]:
    """The contract's answer: an item a line (crontab) or an entry (celery); @reboot and
    a line with "refuse" in it refused; a line with "same" unchanged."""
    items = []
    if body["format"] == "celery":
        entries = json.loads(body["content"])["beat_schedule"]
        lines = [(None, name, json.dumps(entry["schedule"])) for name, entry in entries.items()]
    else:
        lines = [
            (number, text, text.split()[-1])
            for number, text in enumerate(body["content"].splitlines(), 1)
            if text and text[0] != "#"
        ]
    for number, source, name in lines:
        refused = "@reboot" in source or "refuse" in source
        action = "refused" if refused else "unchanged" if "same" in source else "create"
        items.append(
            {
                "line": number,
                "source": source,
                "name": name,
                "action": action,
                "schedule": None if refused else "every minute",
                "next_runs": [] if refused else ["2026-11-28T10:01:00Z"],
                "errors": {"schedule": ["@reboot is not supported."]} if refused else None,
                "warnings": [],
            }
        )
    summary = {
        key: sum(item["action"] == key for item in items)
        for key in ("create", "update", "unchanged", "refused")
    }
    return {
        "dry_run": body["dry_run"],
        "format": body["format"],
        "summary": summary,
        "items": items,
    }


class PortingServer:
    """GET /api/v1/export/, POST /api/v1/import/ and GET /api/v1/jobs/?name=backup."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self, code: int, text: str, kind: str = "application/json") -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                server.requests.append(("GET", url.path, query, self.headers["Authorization"]))
                if url.path == "/api/v1/export/":
                    if query["format"] == ["yaml"]:
                        self.answer(200, yaml.safe_dump(EXPORTED), "application/yaml")
                    else:
                        self.answer(200, json.dumps(EXPORTED))
                elif url.path == "/api/v1/jobs/" and "name" not in query:
                    self.answer(200, json.dumps(JOB_PAGES[query.get("page", ["1"])[0]]))
                elif url.path == "/api/v1/jobs/":
                    found = [{"id": 7, "name": "backup"}] if query["name"] == ["backup"] else []
                    self.answer(
                        200,
                        json.dumps(
                            {"count": len(found), "next": None, "previous": None, "results": found}
                        ),
                    )
                else:
                    self.answer(404, json.dumps({"detail": "Not found."}))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(("POST", self.path, {}, body))
                self.answer(200, json.dumps(plan_for(body)))

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def posts(self) -> list[dict[str, Any]]:
        return [body for method, _, _, body in self.requests if method == "POST"]


@pytest.fixture
def server():
    running = PortingServer()
    yield running
    running.http.shutdown()
    running.http.server_close()


@pytest.fixture
def schedule(server, tmp_path) -> Schedule:
    return Schedule(server.url, "t" * 40, tmp_path)


def test_export_writes_the_servers_yaml_as_it_is(schedule, server):
    exported = schedule("export")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == yaml.safe_dump(EXPORTED)
    assert server.requests == [
        ("GET", "/api/v1/export/", {"format": ["yaml"]}, "Token " + "t" * 40)
    ]


def test_export_json_of_some_jobs_with_secrets(schedule, server):
    exported = schedule(
        "export", "-o", "json", "--include-secrets", "--job", "3", "--job", "backup"
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == EXPORTED
    _, path, query, _ = server.requests[-1]
    assert (path, query) == (
        "/api/v1/export/",
        {"format": ["json"], "include_secrets": ["true"], "job": ["3", "7"]},
    )


CRONTAB = """\
# nightly things
MAILTO=ops@example.com
*/5 * * * * /usr/bin/poll feeds
@reboot /usr/bin/warm cache
"""


def test_import_dry_run_shows_each_line_and_exits_1_when_one_is_refused(schedule, server):
    (schedule.home / "crontab.txt").write_text(CRONTAB)
    planned = schedule("import", "crontab.txt", "--dry-run", "--timezone", "Europe/Paris")
    assert planned.returncode == 1
    assert server.posts() == [
        {
            "format": "crontab",
            "content": CRONTAB,
            "dry_run": True,
            "on_conflict": "update",
            "timezone": "Europe/Paris",
            "queue": "default",
        }
    ]
    table = planned.stdout
    for shown in ("LINE", "feeds", "create", "cache", "refused", "@reboot is not supported."):
        assert shown in table
    assert "create: 2, update: 0, unchanged: 0, refused: 1" in planned.stderr
    as_json = schedule("import", "crontab.txt", "--dry-run", "-o", "json")
    assert json.loads(as_json.stdout)["summary"]["refused"] == 1 and as_json.returncode == 1


CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "0 6 * * *"
  jobTemplate: {spec: {template: {spec: {containers: [{name: r, command: [report]}]}}}}
"""


def test_import_with_yes_applies_after_the_dry_run(schedule, server):
    (schedule.home / "cronjob.yaml").write_text(CRONJOB)
    done = schedule("import", "cronjob.yaml", "--yes", "--on-conflict", "update", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [(p["format"], p["dry_run"], p["on_conflict"]) for p in server.posts()] == [
        ("kubernetes", True, "update"),
        ("kubernetes", False, "update"),
    ]
    assert json.loads(done.stdout)["dry_run"] is False


def test_import_with_nothing_to_change_sends_nothing_more(schedule, server):
    (schedule.home / "same.txt").write_text("* * * * * same\n")
    done = schedule("import", "same.txt", "--yes")
    assert (done.returncode, len(server.posts())) == (0, 1)
    assert "Nothing to import" in done.stderr


def test_import_asks_on_a_terminal_and_no_means_nothing_applied(schedule, server):
    (schedule.home / "crontab.txt").write_text("*/5 * * * * /usr/bin/poll feeds\n")
    terminal = pexpect.spawn(
        SCHEDULE,
        ["import", "crontab.txt"],
        env=schedule.environment(),
        cwd=str(schedule.home),
        encoding="utf-8",
        timeout=30,
    )
    terminal.expect(r"Apply these changes\? \[y/N\]: ")
    terminal.sendline("n")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 1 and "Nothing imported" in terminal.before
    assert [post["dry_run"] for post in server.posts()] == [True]


def test_import_celery_reads_the_beat_schedule_here_and_sends_its_dump(schedule, server):
    (schedule.home / "beatconf.py").write_text(
        textwrap.dedent("""
        from datetime import timedelta
        from celery.schedules import crontab, solar
        timezone = "Europe/Paris"
        beat_schedule = {
            "add-every-5": {"task": "proj.tasks.add", "schedule": crontab(minute="*/5"),
                            "args": [1, 2], "options": {"queue": "math"}},
            "tick": {"task": "proj.tasks.tick", "schedule": timedelta(seconds=30)},
            "at-dawn": {"task": "proj.tasks.wake", "schedule": solar("dawn_civil", 48.8, 2.3)},
        }
    """)
    )
    planned = schedule("import", "--format", "celery", "beatconf", "--dry-run", "-o", "json")
    assert planned.returncode == 1  # the solar one
    [sent] = server.posts()
    assert sent["format"] == "celery"
    assert json.loads(sent["content"]) == {
        "timezone": "Europe/Paris",
        "beat_schedule": {
            "add-every-5": {
                "task": "proj.tasks.add",
                "args": [1, 2],
                "kwargs": {},
                "options": {"queue": "math"},
                "schedule": {
                    "crontab": {
                        "minute": "*/5",
                        "hour": "*",
                        "day_of_week": "*",
                        "day_of_month": "*",
                        "month_of_year": "*",
                    }
                },
            },
            "tick": {
                "task": "proj.tasks.tick",
                "args": [],
                "kwargs": {},
                "options": {},
                "schedule": 30,
            },
        },
    }
    answer = json.loads(planned.stdout)
    assert answer["summary"] == {"create": 2, "update": 0, "unchanged": 0, "refused": 1}
    [refused] = [item for item in answer["items"] if item["action"] == "refused"]
    assert refused["name"] == "at-dawn" and "solar" in refused["errors"]["schedule"][0]


def test_import_celery_json_dump_is_sent_as_is(schedule, server):
    dump = '{"timezone": "UTC", "beat_schedule": {"e": {"task": "t", "schedule": 60}}}'
    (schedule.home / "beat.json").write_text(dump)
    assert schedule("import", "beat.json", "--dry-run").returncode == 0
    assert [(p["format"], p["content"]) for p in server.posts()] == [("celery", dump)]


def test_import_our_own_export_is_detected(schedule, server):
    (schedule.home / "export.yaml").write_text(yaml.safe_dump(EXPORTED))
    schedule("import", "export.yaml", "--dry-run")
    assert server.posts()[0]["format"] == "cronfleet"


def test_import_of_a_missing_file_is_a_usage_error(schedule, server):
    missing = schedule("import", "nowhere.txt")
    assert missing.returncode == 2 and "nowhere.txt" in missing.stderr
    broken = schedule("import", "--format", "celery", "no_such_module_here")
    assert broken.returncode == 1 and "no_such_module_here" in broken.stderr
    assert server.posts() == []


def test_pages_are_read_from_the_server_named_whatever_host_the_links_name(schedule, server):
    listed = schedule("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]
    asked = [query for method, path, query, _ in server.requests if path == "/api/v1/jobs/"]
    assert asked == [{"page_size": ["500"]}, {"page": ["2"], "page_size": ["500"]}]


def test_pages_that_go_round_are_followed_once_then_refused(schedule, server):
    """A ``next`` link already followed is not followed again: the listing ends with an
    error instead of looping forever."""
    JOB_PAGES["1"]["next"] = "http://h/api/v1/jobs/?page=3"
    try:
        looped = schedule("list", "-o", "json")
    finally:
        JOB_PAGES["1"]["next"] = "http://127.0.0.2:9/api/v1/jobs/?page=2&page_size=500"
    assert looped.returncode == 1
    assert "go round" in looped.stderr
    pages = [q.get("page") for _, path, q, _ in server.requests if path == "/api/v1/jobs/"]
    assert pages == [None, ["3"]]
