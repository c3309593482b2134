"""An operator's own Celery task module, registered with SCHEDULER_TASK_MODULES in
tests/test_kinds.py (a `beat_schedule` moved to cronfleet names tasks like this one)."""

from celery import shared_task


@shared_task
def nightly_report(pages: int = 1) -> int:
    return pages
