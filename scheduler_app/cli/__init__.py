"""``schedule``: the command line. A client of the REST API only: nothing here imports
Django or the rest of scheduler_app (tests/test_architecture.py checks it), so it runs
on any machine that can reach the server."""
