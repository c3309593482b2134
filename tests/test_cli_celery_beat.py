"""The CLI's Celery ``beat_schedule`` converter, on real celery.schedules objects: what
``schedule import --format celery`` sends to POST /api/v1/import/."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pytest
from celery.schedules import crontab, schedule, solar

from scheduler_app.cli import celery_beat


def test_crontab_entries_keep_their_fields_as_written():
    dump, refused = celery_beat.convert(
        {
            "every-5": {
                "task": "proj.tasks.add",
                "schedule": crontab(minute="*/5"),
                "args": (2, 3),
                "kwargs": {"x": 1},
                "options": {"queue": "math"},
            },
            "weekday-mornings": {
                "task": "proj.tasks.report",
                "schedule": crontab(minute=30, hour=7, day_of_week="mon-fri"),
            },
            "sets": {
                "task": "t",
                "schedule": crontab(
                    minute=0, hour={3, 15}, day_of_month="1,15", month_of_year="*/3"
                ),
            },
        },
        "Europe/Paris",
    )
    assert refused == {}
    assert dump == {
        "timezone": "Europe/Paris",
        "beat_schedule": {
            "every-5": {
                "task": "proj.tasks.add",
                "args": [2, 3],
                "kwargs": {"x": 1},
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
            "weekday-mornings": {
                "task": "proj.tasks.report",
                "args": [],
                "kwargs": {},
                "options": {},
                "schedule": {
                    "crontab": {
                        "minute": "30",
                        "hour": "7",
                        "day_of_week": "mon-fri",
                        "day_of_month": "*",
                        "month_of_year": "*",
                    }
                },
            },
            "sets": {
                "task": "t",
                "args": [],
                "kwargs": {},
                "options": {},
                "schedule": {
                    "crontab": {
                        "minute": "0",
                        "hour": "3,15",
                        "day_of_week": "*",
                        "day_of_month": "1,15",
                        "month_of_year": "*/3",
                    }
                },
            },
        },
    }
    json.dumps(dump)  # what is sent


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30),
        (2.5, 2.5),
        (timedelta(minutes=5), 300),
        (timedelta(seconds=1.5), 1.5),
        (schedule(run_every=timedelta(hours=1)), 3600),
        (schedule(run_every=90), 90),
    ],
)
def test_intervals_become_seconds(value, seconds):
    dump, refused = celery_beat.convert({"e": {"task": "t", "schedule": value}}, "UTC")
    assert (refused, dump["beat_schedule"]["e"]["schedule"]) == ({}, seconds)


def test_what_cannot_be_converted_is_refused_with_the_reason():
    dump, refused = celery_beat.convert(
        {
            "sunset": {"task": "t", "schedule": solar("sunset", 48.85, 2.35)},
            "odd": {"task": "t", "schedule": object()},
            "never": {"task": "t", "schedule": 0},
            "no-task": {"schedule": 10},
            "lambda-arg": {"task": "t", "schedule": 10, "args": [lambda: 1]},
            "fine": {"task": "t", "schedule": 10},
        },
        "UTC",
    )
    assert list(dump["beat_schedule"]) == ["fine"]
    assert set(refused) == {"sunset", "odd", "never", "no-task", "lambda-arg"}
    assert "solar" in refused["sunset"] and "object" in refused["odd"]
    assert "JSON" in refused["lambda-arg"] and "positive" in refused["never"]


def test_it_loads_a_module_or_a_celery_app(tmp_path, monkeypatch):
    (tmp_path / "beatproj").mkdir()
    (tmp_path / "beatproj" / "__init__.py").write_text("")
    (tmp_path / "beatproj" / "celeryconfig.py").write_text(
        textwrap.dedent("""
        from celery.schedules import crontab
        timezone = "America/New_York"
        beat_schedule = {"nightly": {"task": "beatproj.tasks.n", "schedule": crontab(0, 2)}}
    """)
    )
    (tmp_path / "beatproj" / "app.py").write_text(
        textwrap.dedent("""
        from datetime import timedelta
        from celery import Celery
        app = Celery("beatproj")
        app.conf.timezone = "Asia/Tokyo"
        app.conf.beat_schedule = {"often": {"task": "beatproj.tasks.o",
                                            "schedule": timedelta(seconds=45)}}
    """)
    )
    (tmp_path / "beatproj" / "bare.py").write_text(
        "from celery import Celery\ncelery = Celery('bare')\n"
        "celery.conf.beat_schedule = {'e': {'task': 't', 'schedule': 5}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    entries, zone = celery_beat.load("beatproj.celeryconfig")
    assert (list(entries), zone) == (["nightly"], "America/New_York")
    assert celery_beat.load("beatproj.app:app")[1] == "Asia/Tokyo"
    assert list(celery_beat.load("beatproj.app")[0]) == ["often"]  # its `app`, found
    assert celery_beat.load(str(tmp_path / "beatproj" / "celeryconfig.py"))[1] == (
        "America/New_York"
    )
    assert celery_beat.load("beatproj.bare") == ({"e": {"task": "t", "schedule": 5}}, "UTC")
    with pytest.raises(celery_beat.Unsupported):
        celery_beat.load("beatproj")


def test_module_paths_are_told_from_files():
    assert celery_beat.looks_like_module("proj.celeryconfig")
    assert celery_beat.looks_like_module("proj.celery:app")
    assert not celery_beat.looks_like_module("crontab.txt ")
    assert not celery_beat.looks_like_module("../jobs.yaml")
    assert not celery_beat.looks_like_module("missing.py")
