"""Celery tasks and the executors that run each kind of job."""
