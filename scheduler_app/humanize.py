"""Durations in the words an operator reads at a glance: ``35 ms``, ``4.2 s``, ``2 min 4 s``."""

from __future__ import annotations

UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def human_duration(seconds: float | None) -> str:
    """Two units at most, the larger first (a zero second one left out); under a second
    in milliseconds, under ten seconds to a tenth. None (not timed) is ``-``."""
    if seconds is None:
        return "-"
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)} ms"
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    rest = round(seconds)
    amounts = []
    for name, size in UNITS:
        amount, rest = divmod(rest, size)
        amounts.append((amount, name))
    first = next(i for i, (amount, _) in enumerate(amounts) if amount)
    shown = [amounts[first]] + [a for a in amounts[first + 1 : first + 2] if a[0]]
    return " ".join(f"{amount} {name}" for amount, name in shown)


# C0 controls but tab and newline, and DEL: shown as their Control Pictures (U+2400...),
# so an escape sequence or a bell in a run's output is seen, not acted on or lost.
CONTROLS = {code: 0x2400 + code for code in range(32) if chr(code) not in "\t\n\r"}
CONTROLS[0x7F] = 0x2421


def visible_controls(text: str) -> str:
    """The output as a page shows it: each line as a terminal leaves it (see
    last_rewrite), the other controls as pictures. live_log.js does the same."""
    return "\n".join(last_rewrite(line) for line in text.split("\n")).translate(CONTROLS)


def last_rewrite(line: str) -> str:
    """A carriage return starts the line over (a progress bar: ``10%\r20%\r30%``): the
    line's last non-empty rewrite, so ``30%``; a CRLF's CR is then nothing."""
    rewrites = [part for part in line.split("\r") if part]
    return rewrites[-1] if rewrites else ""
