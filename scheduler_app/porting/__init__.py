"""Import and export of jobs: our own document (``cronfleet``), crontab files,
Kubernetes CronJob manifests and a Celery ``beat_schedule`` dump.

Each format's module reads a file's text into :class:`~.items.Item` objects (the
fields of a job as the API takes them, names for references); :mod:`.apply` judges
and writes them with the API's own serializers and access rules; :mod:`.document`
also writes the export.
"""
