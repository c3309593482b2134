"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md``.

Each script appends one JSON line per figure to the file named by ``BENCH_RESULTS``
(see benchmarks/README.md); this runner gives every script the same file, shows each
script's progress as it runs, and turns the lines into one Markdown table:
figure | goal | ours | baseline | ratio | met. ``--quick`` is passed on to every
script (``make bench QUICK=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
COLUMNS = ("figure", "goal", "ours", "baseline", "ratio", "met")


def run(script: Path, quick: bool, results: Path) -> int:
    args = [sys.executable, str(script)] + (["--quick"] if quick else [])
    env = {**os.environ, "BENCH_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, env=env, cwd=HERE.parent, check=False).returncode


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value).replace("|", "\\|")


def table(lines: list[dict], failed: list[str], quick: bool, took: float) -> str:
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows += ["| " + " | ".join(cell(line.get(c)) for c in COLUMNS) + " |" for line in lines]
    command = "make bench" + (" QUICK=1" if quick else "")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [
        "# Benchmark results",
        "",
        f"`{command}` on {when}, {os.cpu_count()} cores, {took / 60:.1f} min. Ours and the"
        " baseline are measured in the same run on the same Redis and database;"
        " ratio = ours / baseline.",
        "",
    ]
    tail = ["", "Scripts that failed: " + ", ".join(failed)] if failed else []
    return "\n".join(head + rows + tail) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run of each")
    parser.add_argument("only", nargs="*", help="run only the scripts whose name contains these")
    options = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if options.only:
        scripts = [s for s in scripts if any(word in s.name for word in options.only)]
    started = time.monotonic()
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        for number, script in enumerate(scripts, 1):
            print(f"[{number}/{len(scripts)}] {script.name} ...", file=sys.stderr, flush=True)
            took = time.monotonic()
            if run(script, options.quick, results) != 0:
                failed.append(script.name)
            print(f"[{number}/{len(scripts)}] {script.name} done in "
                  f"{time.monotonic() - took:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    RESULTS.write_text(table(lines, failed, options.quick, time.monotonic() - started))
    print(RESULTS.read_text())
    print(f"written to {RESULTS.relative_to(HERE.parent)}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
