"""Running the installed ``schedule`` console script as a user would: a subprocess, its
own HOME and config directory, talking HTTP to a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SCHEDULE = str(Path(sys.executable).parent / "schedule")


@dataclass
class Schedule:
    """``schedule`` for one user of one server: ``url`` and ``token`` given by the
    environment (SCHEDULE_URL, SCHEDULE_TOKEN) unless told otherwise."""

    url: str
    token: str | None
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, **extra: str | None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SCHEDULE_", "NO_COLOR", "FORCE_COLOR", "EDITOR", "VISUAL"))
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            COLUMNS="200",
            SCHEDULE_URL=self.url,
        )
        if self.token:
            env["SCHEDULE_TOKEN"] = self.token
        env.update(self.env)
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
        **env: str | None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SCHEDULE, *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env=self.environment(**env),
            cwd=cwd or self.home,
            stdin=None if input else subprocess.DEVNULL,
        )

    def popen(self, *args: str, **env: str | None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [SCHEDULE, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(**env),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
        )
