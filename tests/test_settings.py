"""Settings refuse to start unsafely, and the system checks catch a broken broker setting."""

from __future__ import annotations

import os
import subprocess
import sys

from django.core.checks import run_checks


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = load_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_starts_with_a_secret_key_or_in_debug():
    assert load_settings(DEBUG="0", SECRET_KEY="x" * 50).returncode == 0
    assert load_settings(DEBUG="1").returncode == 0


def test_a_visibility_timeout_shorter_than_a_job_is_an_error(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    assert [e.id for e in run_checks()] == ["scheduler_app.E001"]


def test_a_misspelt_yes_or_no_is_an_error_not_false():
    result = load_settings(DEBUG="ture")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr
    assert load_settings(DEBUG="on").returncode == 0


def test_reading_the_settings_creates_no_directory(tmp_path):
    var = tmp_path / "var"
    assert load_settings(DEBUG="1", VAR_DIR=str(var)).returncode == 0
    assert not var.exists()


def test_a_heartbeat_timeout_shorter_than_three_flushes_is_an_error(settings):
    settings.SCHEDULER_LOG_FLUSH_SECONDS = 5.0
    settings.SCHEDULER_HEARTBEAT_TIMEOUT = 10
    assert [e.id for e in run_checks()] == ["scheduler_app.E002"]


def test_a_scheduler_down_alert_quicker_than_a_takeover_is_a_warning(settings):
    settings.SCHEDULER_DOWN_AFTER = settings.CELERY_REDBEAT_LOCK_TIMEOUT
    assert [e.id for e in run_checks()] == ["scheduler_app.W001"]
