"""Who job code runs as: the OS identity of every child a worker starts (SCHEDULER_RUN_AS).

A worker started as root runs job code as SCHEDULER_RUN_AS, ``nobody`` when it is
unset, never as itself. A worker started as another user cannot switch: it runs
job code as itself (a warning says so at start). Root is refused unless
SCHEDULER_ALLOW_ROOT says so. Read by the worker (workers/sandbox.py) and by the
system checks, so that what the checks say at start is what the worker does.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from django.conf import settings

DEFAULT_RUN_AS = "nobody"


class IdentityError(RuntimeError):
    """Job code cannot run on this worker; the message says why and what to change."""


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid})"


def _lookup(name: str) -> Identity:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise IdentityError(
            f"SCHEDULER_RUN_AS names the user {name!r}, who does not exist on this machine: "
            "create that user, or set SCHEDULER_RUN_AS to one who does."
        ) from None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def worker() -> Identity:
    """The identity this process runs as."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Identity(name, uid, os.getegid(), tuple(os.getgroups()))


def run_as() -> Identity:
    """The identity job code runs as on this worker; IdentityError when it may not run."""
    me = worker()
    name = settings.SCHEDULER_RUN_AS or (DEFAULT_RUN_AS if me.uid == 0 else me.name)
    target = me if name == me.name else _lookup(name)
    if target.uid == 0 and not settings.SCHEDULER_ALLOW_ROOT:
        raise IdentityError(
            f"job code would run as root ({target.name}), with every file of this machine in "
            "reach (the database, other users' secrets): set SCHEDULER_RUN_AS to an "
            "unprivileged user, or SCHEDULER_ALLOW_ROOT=1 to accept it."
        )
    if target.uid != me.uid and me.uid != 0:
        raise IdentityError(
            f"SCHEDULER_RUN_AS is {target.name}, but this worker runs as {me.name} and cannot "
            "switch users: start the worker as root, or leave SCHEDULER_RUN_AS unset."
        )
    return target


def shares_worker_identity() -> bool:
    """True when job code runs as the worker's own user (and so can read what it reads)."""
    try:
        return run_as().uid == os.geteuid()
    except IdentityError:
        return False
