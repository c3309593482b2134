"""Where the CLI keeps the server's URL and the user's token.

``$XDG_CONFIG_HOME/cronfleet/config.toml`` (``~/.config/...`` by default) holds two
top-level keys, ``url`` and ``token``; the VS Code extension reads the same file, so
the format stays that. ``SCHEDULE_URL`` and ``SCHEDULE_TOKEN`` override it.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from scheduler_app.cli.errors import CliError


@dataclass(frozen=True)
class Settings:
    url: str | None
    token: str | None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cronfleet" / "config.toml"


def read_file(path: Path | None = None) -> dict[str, object]:
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(
            f"Cannot read {path}: {exc}. Fix it, or delete it and run `schedule login URL` again."
        ) from exc


def resolve(url: str | None = None, token: str | None = None) -> Settings:
    """Options first, then the environment, then the file."""
    stored = read_file()
    url = url or os.environ.get("SCHEDULE_URL") or _text(stored.get("url"))
    token = token or os.environ.get("SCHEDULE_TOKEN") or _text(stored.get("token"))
    return Settings(url=url.rstrip("/") if url else None, token=token)


def save(url: str, token: str, path: Path | None = None) -> Path:
    """Write ``url`` and ``token`` (other keys kept) atomically: a temporary file made
    0600 from the start, renamed over the old one; the directory 0700."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    content = {**read_file(path), "url": url, "token": token}
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            tomli_w.dump(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
