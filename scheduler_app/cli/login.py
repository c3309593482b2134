"""``schedule login``: a username and password exchanged for the API token, kept in
the config file."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import click

from scheduler_app.cli import config, errors, output
from scheduler_app.cli.app import cli
from scheduler_app.cli.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"


@cli.command("login")
@click.argument("url", required=False)
@click.option("-u", "--username", help="Asked for when not given.")
@click.option(
    "-o",
    "--output",
    "output_format",
    type=click.Choice(output.FORMATS),
    default="table",
    help="json or yaml: where the token went, for scripts.",
)
def login(url: str | None, username: str | None, output_format: str) -> None:
    """Log in to a cronfleet server and keep its token in the config file.

    The password is asked for (hidden) and never stored; the token is kept in
    $XDG_CONFIG_HOME/cronfleet/config.toml (~/.config/... by default), readable by
    you alone (mode 0600).

    \b
    Examples:
      schedule login http://127.0.0.1:8000
      schedule login https://cron.example.com --username alice
    """
    try:
        saved = sign_in(url, username)
    except errors.CliError as exc:
        output.say(exc.message)
        sys.exit(exc.exit_code)
    if output_format == "table":
        output.say(
            f"Logged in to {saved['url']} as {saved['username']}; token saved in {saved['config']}."
        )
    else:
        output.machine(saved, output_format)


def sign_in(url: str | None, username: str | None) -> dict[str, str]:
    known = config.resolve().url
    url = (url or click.prompt("Server URL", default=known or DEFAULT_URL, err=True)).strip()
    if not url.startswith(("http://", "https://")):
        raise errors.CliError(f"{url!r} is not a URL: give it as http://host:port.", errors.USAGE)
    url = url.rstrip("/")
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        output.say(
            f"warning: {url} is plain http: your password and token cross the network "
            "unencrypted. Use https:// unless this network is yours alone."
        )
    username = username or click.prompt("Username", err=True)
    password = click.prompt("Password", hide_input=True, err=True)
    client = Client(config.Settings(url=url, token=None), anonymous=True)
    try:
        answer = client.post("auth/token/", {"username": username, "password": password})
    except errors.CliError as exc:
        if exc.http_status == 400:
            raise errors.CliError(
                "Login refused: wrong username or password.", errors.REFUSED
            ) from exc
        raise
    path = config.save(url, answer["token"])
    return {"url": url, "username": username, "config": str(path)}
