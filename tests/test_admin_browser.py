"""The dashboard and the admin's pages in a real headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright) against pytest-django's live server and the
real stack: a running run's page follows its log as it grows, the dashboard draws its
charts and follows the run too, no page logs a JavaScript error, and hostile names and
output stay text. Screenshots go to SCREENSHOT_DIR (default /work/screens/)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app import services
from scheduler_app.models import Job, Run
from tests.helpers import make_job, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.stack]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENS = Path(os.environ.get("SCREENSHOT_DIR", "/work/screens"))
TICKS = 40
TICKER = f'for i in $(seq 1 {TICKS}); do echo "tick $i <script>alert(1)</script>"; sleep 0.25; done'
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def chromium(monkeypatch) -> Iterator[tuple[Any, list[str]]]:
    """A page in headless Chromium, and the JavaScript errors and dialogs it met."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls between
    # its steps are plain synchronous calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda message: problems.extend(console_error(message)))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                          dialog.dismiss()))  # fmt: skip
        yield page, problems
        browser.close()


def console_error(message: Any) -> list[str]:
    """An error the page logged, but the browser's own ask for /favicon.ico (none is served)."""
    if message.type != "error" or message.location.get("url", "").endswith("/favicon.ico"):
        return []
    return [f"{message.text} ({message.location.get('url')})"]


def add_run(job, status: str, ago: timedelta, duration: float, **fields: Any) -> Run:
    at = timezone.now() - ago
    times = {"scheduled_for": at, "started_at": at, "finished_at": at}
    run = Run.objects.create(job=job, trigger="schedule", status=status, duration=duration,
                             **times, **fields)  # fmt: skip
    Run.objects.filter(id=run.id).update(queued_at=at)
    return run


def history(user) -> Job:
    """A day of runs to chart, jobs that fire in the next 24 hours, a hostile failure."""
    nightly = make_job(user, name="nightly-backup", timezone="Europe/Berlin",
                       schedule={"type": "cron", "expression": "30 2 * * *"})  # fmt: skip
    reports = make_job(user, name="reports", schedule={"type": "cron", "expression": "0 */4 * * *"})
    hostile = make_job(user, name=HOSTILE_NAME, schedule={"type": "manual"})
    for hour in range(24):
        for n in range(hour % 5 + 1):
            add_run(reports, "succeeded", timedelta(hours=hour, minutes=n * 7), 0.2 + n * 1.3)
        if hour % 6 == 0:
            add_run(nightly, "failed", timedelta(hours=hour, minutes=3), 61.0,
                    error="pg_dump: connection refused", exit_code=1)  # fmt: skip
        else:
            add_run(nightly, "succeeded", timedelta(hours=hour, minutes=3), 75.0 + hour)
    add_run(hostile, "failed", timedelta(minutes=20), 0.5,
            error="<script>alert(2)</script>\x1b[31mred", exit_code=2)  # fmt: skip
    return nightly


def log_length(page) -> int:
    return page.evaluate("document.getElementById('cf-log').textContent.length")


def test_the_pages_follow_a_running_run_in_chromium(live, live_server, chromium, django_user_model):
    page, problems = chromium
    user = django_user_model.objects.create_superuser("boss", password="boss-password-1")
    nightly = history(user)
    ticker = make_job(user, name="ticker", payload={"command": TICKER}, schedule={"type": "manual"})
    run = services.create_manual_run(ticker)
    wait_for(lambda: Run.objects.filter(id=run.id, status="running").exclude(output="").exists())

    page.goto(f"{live_server.url}/admin/login/?next=/admin/dashboard/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "boss-password-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/dashboard/")
    page.wait_for_function(
        "document.getElementById('cf-updated').textContent.startsWith('updated')"
    )
    running = f"#cf-running-{run.id} pre"
    page.wait_for_function(f"document.querySelector('{running}')?.textContent.includes('tick')")
    assert page.locator("#cf-jobs tbody tr").count() >= 3
    assert page.locator("#cf-failures tbody tr").count() >= 1
    assert "<script>alert(2)</script>" in page.inner_text("#cf-failures")
    assert "<script>alert(2)</script>\u241b[31mred" in page.inner_text("#cf-failures")
    assert HOSTILE_NAME in page.inner_text("#cf-jobs")
    page.screenshot(path=str(SCREENS / "dashboard.png"), full_page=True)
    page.emulate_media(color_scheme="dark")  # the admin's own dark theme, charts included
    page.reload()
    page.wait_for_function(
        "document.getElementById('cf-updated').textContent.startsWith('updated')"
    )
    page.wait_for_function(f"document.querySelector('{running}')?.textContent.includes('tick')")
    page.screenshot(path=str(SCREENS / "dashboard-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")

    page.goto(f"{live_server.url}/admin/scheduler_app/run/{run.id}/change/")
    assert page.locator("text=following live").count() == 1
    before = log_length(page)
    page.wait_for_function(f"document.getElementById('cf-log').textContent.length > {before}")
    assert page.locator("#cf-log script").count() == 0
    assert page.locator("input[name=_save], .deletelink").count() == 0
    page.screenshot(path=str(SCREENS / "run-running.png"), full_page=True)
    # At its end the page shows it ended, then reloads once with the final figures.
    page.wait_for_selector("#cf-status >> text=succeeded", timeout=30_000)
    log = page.inner_text("#cf-log")
    assert f"tick {TICKS} <script>alert(1)</script>" in log and log.count("tick ") == TICKS
    page.screenshot(path=str(SCREENS / "run-finished.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/scheduler_app/job/{nightly.id}/change/")
    page.wait_for_selector("#cf-run-now")
    assert page.locator(".cf-strip .cf-mark").count() == 24
    assert page.locator(".cf-warnings .cf-warning").count() >= 1  # Berlin's DST changes
    top = {"x": 0, "y": 0, "width": 1400, "height": 1100}
    page.screenshot(path=str(SCREENS / "job.png"), clip=top, full_page=True)
    page.goto(f"{live_server.url}/admin/")
    page.click("text=Dashboard")
    page.wait_for_url("**/admin/dashboard/")
    page.goto(f"{live_server.url}/admin/")
    page.screenshot(path=str(SCREENS / "index.png"))
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(f"{live_server.url}/admin/scheduler_app/run/")
    assert page.locator("td.field-human_duration >> text=1 min 1 s").count() == 4
    page.screenshot(path=str(SCREENS / "run-list.png"))
    assert problems == []
