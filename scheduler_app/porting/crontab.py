"""A crontab file (a user's, or the system's with a user field) as ``command`` jobs.

Read as Vixie cron (and cronie) read it: each schedule line is a job whose schedule
is the line's five fields (the day-of-month/day-of-week OR rule, names, ranges and
steps are cron's: scheduler_app.schedules reads cron as Vixie does); environment
lines apply to the lines after them (``MAILTO`` to ``notify_emails``, ``CRON_TZ`` and
``TZ`` to the time zone, ``SHELL`` to the payload's shell, others to the job's env
where the env rules allow, ``PATH`` set at the head of the command); the comment
lines right above a line are its description. An unescaped ``%`` ends the command:
the rest is its standard input, each further ``%`` a newline. Cron lets runs overlap
and does not catch up missed ones: the jobs do likewise (``concurrency_policy``
allow, ``catchup`` skip).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field

from scheduler_app import validation
from scheduler_app.porting.items import Item, Options, check_count, clip

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
FIVE_FIELDS = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$")
SYSTEM_USERS = frozenset(
    {"root", "nobody", "daemon", "www-data", "postgres", "mysql", "redis", "backup", "mail",
     "news", "operator", "smmsp", "apache", "nginx", "http", "syslog", "games", "man", "lp",
     "uucp", "proxy", "list", "irc", "bin", "sys", "adm"}
)  # fmt: skip
SYSTEM_HEADER = re.compile(r"\bdow\s+user\b|\buser\s+command\b", re.IGNORECASE)
NAME_WORDS = 5
NAME_LENGTH = 60


@dataclass
class Context:
    """What the environment lines read so far set for the lines after them."""

    timezone: str
    shell: str = "/bin/sh"
    emails: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings for every later job


def read(text: str, options: Options) -> list[Item]:
    lines = text.splitlines()
    system = options.crontab_system
    if system is None:
        system = looks_system(lines)
    context = Context(timezone=options.timezone)
    comments: list[str] = []
    items: list[Item] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            comments = []
        elif line.startswith("#"):
            comments.append(line[1:].strip())
        elif match := ENV_LINE.match(line):
            set_variable(context, match[1], unquote(match[2]))
            comments = []
        else:
            items.append(job_item(number, line, context, comments, system, options))
            comments = []
            check_count(len(items))
    name_items(items)
    return items


def looks_system(lines: list[str]) -> bool:
    """A system crontab (/etc/crontab, /etc/cron.d): a header comment naming the user
    field, or every schedule line's sixth word a well-known system account."""
    users = []
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            if SYSTEM_HEADER.search(line):
                return True
            continue
        if not line or ENV_LINE.match(line):
            continue
        words = line.split()
        at = 1 if line.startswith("@") else 5
        users.append(words[at] if len(words) > at + 1 else "")
    return bool(users) and all(user in SYSTEM_USERS for user in users)


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def set_variable(context: Context, name: str, value: str) -> None:
    if name == "MAILTO":
        context.emails = [a.strip() for a in value.split(",") if a.strip()]
    elif name in ("CRON_TZ", "TZ"):
        context.timezone = value or "UTC"
    elif name == "SHELL":
        context.shell = value
    elif name == "PATH":
        context.path = value
    elif name in validation.ENV_REFUSED or name.startswith(validation.ENV_REFUSED_PREFIXES):
        context.notes.append(
            f"{name}={clip(value, 60)} is not set: a job's env may not set {name} (it changes "
            "how the process starts); set it inside the command if it is needed."
        )
    elif not validation.ENV_NAME_RE.fullmatch(name):
        context.notes.append(f"{name} is not set: env names are capital letters, digits and '_'.")
    else:
        context.env[name] = value


def job_item(number: int, line: str, context: Context, comments: list[str], system: bool,
             options: Options) -> Item:  # fmt: skip
    item = Item(number, clip(line), "")
    schedule, rest = split_schedule(line)
    if schedule is None:
        return item.refuse("schedule", "not a crontab line: five time fields (or @hourly, "
                           "@daily, ...) then the command.")  # fmt: skip
    if schedule == "@reboot":
        return item.refuse(
            "schedule", "@reboot is not supported: jobs run on a schedule, not when a "
            "machine starts (use a systemd unit or the worker's start-up)."
        )  # fmt: skip
    if schedule.startswith("@") and schedule not in ALIASES:
        return item.refuse("schedule", f"{schedule} is not a cron schedule.")
    if system:
        user, _, rest = rest.partition(" ")
        rest = rest.strip()
        item.warnings.append(
            f"the user field {user!r} is not honoured: the job runs as the scheduler's "
            "run-as identity (SCHEDULER_RUN_AS)."
        )
    if not rest:
        return item.refuse("payload", "the line has no command.")
    command, stdin = split_percent(rest)
    item.name = derive_name(command)
    item.fields = job_fields(command, stdin, ALIASES.get(schedule, schedule), context, comments,
                             options, item.warnings)  # fmt: skip
    return item


def split_schedule(line: str) -> tuple[str | None, str]:
    if line.startswith("@"):
        word, _, rest = line.partition(" ")
        return word.lower(), rest.strip()
    match = FIVE_FIELDS.match(line)
    if not match:
        return None, ""
    return " ".join(match.groups()[:5]), match[6].strip()


def split_percent(text: str) -> tuple[str, str | None]:
    """The command and its standard input, as cron splits them: the first unescaped %
    ends the command; after it each % is a newline; ``\\%`` is a plain %."""
    parts: list[list[str]] = [[]]
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1 : index + 2] == "%":
            parts[-1].append("%")
            index += 2
            continue
        if char == "%":
            if len(parts) == 1:
                parts.append([])
            else:
                parts[-1].append("\n")
        else:
            parts[-1].append(char)
        index += 1
    command = "".join(parts[0])
    return command, "".join(parts[1]) if len(parts) > 1 else None


def job_fields(command: str, stdin: str | None, expression: str, context: Context,
               comments: list[str], options: Options, warnings: list[str]) -> dict:  # fmt: skip
    warnings.extend(context.notes)
    if stdin is not None:
        command = f"printf '%s' {shlex.quote(stdin)} | ( {command} )"
        warnings.append("the text after % is given to the command as its standard input, "
                        "as cron does.")  # fmt: skip
    if context.path is not None:
        command = f"PATH={shlex.quote(context.path)}; export PATH; {command}"
        warnings.append("PATH is set at the head of the command: a job's env may not set it.")
    fields = {
        "name": "",
        "description": "\n".join(comments),
        "tags": ["crontab"],
        "kind": "command",
        "payload": {"command": command, "shell": context.shell},
        "schedule": {"type": "cron", "expression": expression},
        "timezone": context.timezone,
        "queue": options.queue,
        "env": dict(context.env),
        "concurrency_policy": "allow",
        "catchup": "skip",
    }
    if context.emails is not None:
        fields["notify_emails"] = mail_addresses(context.emails, warnings)
        if fields["notify_emails"]:
            warnings.append("cron mails whatever the job prints; cronfleet mails these "
                            "addresses when a run fails (notify_on).")  # fmt: skip
    return fields


def mail_addresses(addresses: list[str], warnings: list[str]) -> list[str]:
    kept = [address for address in addresses if "@" in address]
    for address in addresses:
        if "@" not in address:
            warnings.append(f"MAILTO {address!r} is a local mailbox, not an e-mail address: "
                            "left out of notify_emails.")  # fmt: skip
    return kept


def derive_name(command: str) -> str:
    """A name from the command's first words: the program's base name and its arguments,
    up to a redirection, pipe or separator."""
    words = []
    for word in command.split():
        if word[:1] in "|;&<>" or word[:2] in ("2>", "1>"):
            break
        if "=" in word and not words:
            continue  # VAR=value before the program
        words.append(word.rstrip("/").rsplit("/", 1)[-1] if word.startswith("/") else word)
        if len(words) == NAME_WORDS:
            break
    slug = re.sub(r"[^a-z0-9]+", "-", " ".join(words).lower()).strip("-")
    return slug[:NAME_LENGTH].strip("-")


def name_items(items: list[Item]) -> None:
    """Names unique in the file and stable: the same line gets the same name each time
    (a name shared by several lines takes a digest of its schedule and command)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + 1
    taken: set[str] = set()
    for item in items:
        base = item.name or f"cron-line-{item.line}"
        if counts.get(item.name, 0) > 1 or not item.name:
            digest = hashlib.sha256(item.source.encode()).hexdigest()[:6]
            base = f"{base}-{digest}" if item.name else base
        name, extra = base, 2
        while name in taken:
            name, extra = f"{base}-{extra}", extra + 1
        taken.add(name)
        item.name = name
        if item.fields:
            item.fields["name"] = name
