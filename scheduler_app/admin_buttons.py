"""The admin's buttons: Run now, Pause, Resume (a job's page) and Cancel (a run's, and
a job's for its running run). Each a POST with the admin's CSRF check, to a row the
user may view (else 404), done only with the right ``operate`` (else refused, with
the reason, as a message); then back to the row's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from scheduler_app import access, services
from scheduler_app.models import Job, Run

Act = Callable[[Any], tuple[str, str]]  # the row -> (message level, message)


def run_now(job: Job) -> tuple[str, str]:
    run = services.create_manual_run(job)
    return messages.SUCCESS, f"Run #{run.id} of {job.name} queued."


def pause(job: Job) -> tuple[str, str]:
    services.set_enabled(job, enabled=False)
    return messages.SUCCESS, f"{job.name} paused."


def resume(job: Job) -> tuple[str, str]:
    services.set_enabled(job, enabled=True)
    return messages.SUCCESS, f"{job.name} resumed."


def cancel(run: Run) -> tuple[str, str]:
    if services.cancel_run(run):
        return messages.SUCCESS, f"Run #{run.id} cancelled."
    return messages.WARNING, f"Run #{run.id} had already ended ({run.status}): nothing to cancel."


def back(request: HttpRequest, model_admin: admin.ModelAdmin, row: Any) -> HttpResponseRedirect:
    """To ``next`` when it is a page of this site, else the row's own page."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()}):
        return HttpResponseRedirect(wanted)
    meta = model_admin.model._meta
    return HttpResponseRedirect(reverse(f"admin:{meta.app_label}_{meta.model_name}_change",
                                        args=[row.pk]))  # fmt: skip


def button(model_admin: admin.ModelAdmin, act: Act) -> Callable[..., HttpResponse]:
    @require_POST
    def view(request: HttpRequest, object_id: int) -> HttpResponse:
        row = model_admin.get_queryset(request).filter(pk=object_id).first()
        if row is None:
            raise Http404("No such row, or not one you may view.")
        if not access.can(request.user, "operate", row):
            level, text = messages.ERROR, f"Refused: {access.refusal(request.user, 'operate', row)}"
        else:
            level, text = act(row)
        model_admin.message_user(request, text, level)
        return back(request, model_admin, row)

    return model_admin.admin_site.admin_view(view)


def button_urls(model_admin: admin.ModelAdmin, acts: dict[str, Act]) -> list[Any]:
    """``<id>/<name>/`` for each button, named ``admin:<app>_<model>_<name>``."""
    meta = model_admin.model._meta
    return [
        path(f"<int:object_id>/{name}/", button(model_admin, act),
             name=f"{meta.app_label}_{meta.model_name}_{name.replace('-', '_')}")
        for name, act in acts.items()
    ]  # fmt: skip


JOB_BUTTONS: dict[str, Act] = {"run-now": run_now, "pause": pause, "resume": resume}
RUN_BUTTONS: dict[str, Act] = {"cancel": cancel}
