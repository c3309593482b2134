"""Install one pip package at one version into a ``--target`` directory: the child
program of a ``software`` job's ``pip`` entries (run as the run-as identity, passed to
Python as ``-c`` text: standard library only).

``pip install --upgrade --target`` replaces the package's own directories but leaves
the ``<name>-<old version>.dist-info`` of the version it replaced beside the new
one, and which of the two ``importlib.metadata`` then reports is a matter of
directory order. So once pip has succeeded, the other versions' metadata of the
same project are removed.

Arguments: the target directory, the project name, the version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys


def normalised(name: str) -> str:
    """A project name as wheels spell it in file names (PEP 503, with ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def stale_metadata(target: str, name: str, version: str) -> list[str]:
    """The ``.dist-info`` directories in ``target`` of ``name`` at another version."""
    found = []
    for entry in os.listdir(target):
        stem, dot, suffix = entry.rpartition(".")
        if suffix != "dist-info" or not dot:
            continue
        project, _, its_version = stem.rpartition("-")
        if normalised(project) == normalised(name) and its_version != version:
            found.append(os.path.join(target, entry))
    return found


def main() -> int:
    target, name, version = sys.argv[1:4]
    done = subprocess.call([sys.executable, "-m", "pip", "install", "--no-input",
                            "--disable-pip-version-check", "--upgrade", "--target", target,
                            f"{name}=={version}"])  # fmt: skip
    if done == 0:
        for path in stale_metadata(target, name, version):
            print(f"removing the metadata of a replaced version: {os.path.basename(path)}")
            shutil.rmtree(path)
    return done


if __name__ == "__main__":
    sys.exit(main())
