"""A page of rows, read plainly (scheduler_app/api/rows.py), is the JSON DRF gives each
row alone: every field, with values set and unset, through the lists that use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from scheduler_app.api.fleet import NodeRunSerializer
from scheduler_app.api.rows import PlainListSerializer
from scheduler_app.api.serializers import AlertSerializer, JobSerializer, RunSerializer
from scheduler_app.models import Alert, Calendar, Job, JobDependency, Run, Team
from tests.helpers import make_job

T0 = datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def request_of(owner):
    request = APIRequestFactory().get("/api/v1/jobs/")
    request.user = owner
    return request


def one_by_one(serializer_class, rows, context):
    return [serializer_class(row, context=context).data for row in rows]


def as_page(serializer_class, rows, context):
    page = serializer_class(rows, many=True, context=context)
    assert isinstance(page, PlainListSerializer)
    return page.data


@pytest.fixture
def jobs(owner):
    team = Team.objects.create(name="ops")
    calendar = Calendar.objects.create(owner=owner, name="holidays", dates=["2030-12-25"])
    plain = make_job(owner, name="plain")
    full = make_job(
        owner, name="full", team=team, calendar=calendar, description="all set",
        tags=["a", "b"], env={"A": "1", "B": {"value": "s3cret", "secret": True}},
        schedule={"type": "cron", "expression": "*/5 * * * *"}, timezone="Europe/Paris",
        start_at=T0, end_at=T0 + timedelta(days=400),
        window={"start": "08:00", "end": "18:00", "days_of_week": [0, 1, 2, 3, 4]},
        timeout=60, max_concurrent=2, targets={"nodes": [], "groups": [], "labels": "r=db"},
        enabled=False, alert_if_longer="auto", last_status="failed", last_run_at=T0,
    )  # fmt: skip
    done = make_job(owner, name="done", schedule={"type": "manual"})
    Job.objects.filter(id=done.id).update(completed_at=T0)
    JobDependency.objects.create(job=full, upstream=plain, on="failure")
    JobDependency.objects.create(job=full, upstream=done)
    return list(
        Job.objects.select_related("owner", "calendar")
        .prefetch_related("dependencies")
        .order_by("id")
    )


def test_a_page_of_jobs_is_each_job_as_drf_gives_it(jobs, request_of):
    context = {"request": request_of}
    page = as_page(JobSerializer, jobs, context)
    assert page == one_by_one(JobSerializer, jobs, context)
    assert [list(row) for row in page] == [list(JobSerializer.Meta.fields)] * 3  # the order
    full = page[1]
    assert full["env"]["B"]["value"] == "***" and full["depends_on"] == [
        {"job": jobs[0].id, "on": "failure"}, {"job": jobs[2].id, "on": "success"}
    ]  # fmt: skip
    assert full["start_at"].endswith("Z") and full["team"] is not None


def test_a_page_of_runs_is_each_run_as_drf_gives_it(jobs):
    job = jobs[0]
    first = Run.objects.create(job=job, trigger="schedule", scheduled_for=T0, status="queued")
    Run.objects.create(
        job=job, trigger="retry", attempt=2, status="failed", scheduled_for=T0, started_at=T0,
        finished_at=T0 + timedelta(seconds=1.5), duration=1.5, exit_code=3, worker="w1",
        output="out\n", error="boom", result={"rows": [1, 2]}, parent=first, node="n1",
        heartbeat_at=T0, pid=42,
    )  # fmt: skip
    runs = list(Run.objects.select_related("job").order_by("id"))
    for serializer_class in (RunSerializer, NodeRunSerializer):
        page = as_page(serializer_class, runs, {})
        assert page == one_by_one(serializer_class, runs, {})
    assert page[1]["parent"] == first.id and page[0]["started_at"] is None


def test_a_page_of_alerts_the_schedulers_own_without_a_job_too(jobs):
    Alert.objects.create(kind="missed", job=jobs[0], since=T0, detail="slot missed")
    Alert.objects.create(kind="scheduler_down", job=None, since=T0, detail="beat down",
                         resolved_at=T0)  # fmt: skip
    alerts = list(Alert.objects.select_related("job").order_by("id"))
    page = as_page(AlertSerializer, alerts, {})
    assert page == one_by_one(AlertSerializer, alerts, {})
    assert page[1]["job_name"] is None and page[1]["open"] is False


def test_the_lists_show_each_row_as_its_own_page_does(api, jobs):
    Run.objects.create(job=jobs[1], trigger="manual", scheduled_for=T0, status="running")
    pages = {kind: api.get(f"/api/v1/{kind}/").json()["results"] for kind in ("jobs", "runs")}
    for kind, listed in pages.items():
        assert listed == [api.get(f"/api/v1/{kind}/{row['id']}/").json() for row in listed]
    assert pages["jobs"][1]["depends_on"] == [
        {"job": jobs[0].id, "on": "failure"}, {"job": jobs[2].id, "on": "success"}
    ]  # fmt: skip


def test_fields_through_properties_methods_and_missing_rows_are_drfs(jobs):
    class Odd(RunSerializer):
        job_status = serializers.CharField(source="job.status")  # a property, then plain
        finished = serializers.BooleanField(source="is_finished")  # a property
        owner = serializers.CharField(source="job.owner.username")  # two foreign keys
        parent_job = serializers.CharField(source="parent.job.name", default=None)  # missing
        schedule_text = serializers.CharField(source="job.timing.describe")  # methods

        class Meta(RunSerializer.Meta):
            fields = ["id", "job_status", "finished", "owner", "parent_job", "schedule_text"]

    first = Run.objects.create(job=jobs[1], trigger="manual", scheduled_for=T0)
    Run.objects.create(job=jobs[0], trigger="retry", scheduled_for=T0, parent=first)
    runs = list(Run.objects.select_related("job__owner", "parent__job").order_by("id"))
    page = as_page(Odd, runs, {})
    assert page == one_by_one(Odd, runs, {})
    assert [run["parent_job"] for run in page] == [None, "full"]
