"""Run one registered Celery task in this process and print its JSON return value.

Used by the ``celery`` job kind as the child process: ``python -m workers.run_task
'{"task": ..., "args": [...], "kwargs": {...}}'``. It imports nothing of the
project but the Celery app until Django is set up.
"""

from __future__ import annotations

import json
import os
import sys

import django

from config.celery import app

RESULT_MARK = "__SCHEDULER_TASK_RESULT__ "


def main(call: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    request = json.loads(call)
    app.loader.import_default_modules()
    value = app.tasks[request["task"]](*request["args"], **request["kwargs"])
    print(RESULT_MARK + json.dumps(value, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
