"""Kubernetes CronJob manifests (one or many YAML documents, or a ``List``) as
``command`` jobs.

``metadata.name`` is the name, its labels the tags; ``spec.schedule`` the cron
schedule (a ``CRON_TZ=``/``TZ=`` prefix, or ``spec.timeZone``, its zone);
``concurrencyPolicy`` (Kubernetes' default: Allow) the concurrency policy;
``startingDeadlineSeconds`` the misfire grace; ``suspend`` a paused job; the first
container's ``command`` and ``args`` the shell command (each word quoted);
``activeDeadlineSeconds`` the timeout; ``backoffLimit`` (default 6) the retries. What
cannot be honoured here (the image, volumes, other containers) is a warning. Each
object is an item whose ``line`` is its place in the file (1 for the first object);
an object of another kind is refused.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from scheduler_app.porting import safe_yaml
from scheduler_app.porting.items import FileError, Item, Options, check_count

POLICIES = {"Allow": "allow", "Forbid": "forbid", "Replace": "replace"}
TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$")
BACKOFF_DEFAULT = 6  # Kubernetes' own
MAX_RETRIES = 100
DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
KNOWN_POD_FIELDS = {"containers", "restartPolicy"}
KNOWN_CONTAINER_FIELDS = {"name", "image", "command", "args", "env", "imagePullPolicy"}


def read(text: str, options: Options) -> list[Item]:
    objects: list[Any] = []
    for data, _node in safe_yaml.load_all(text):
        if data is None:
            continue
        if isinstance(data, dict) and data.get("kind") == "List":
            entries = data.get("items")
            if not isinstance(entries, list):
                raise FileError("a List's 'items' must be a list.")
            objects.extend(entries)
        else:
            objects.append(data)
        check_count(len(objects))
    if not objects:
        raise FileError("no Kubernetes objects in the file.")
    return [read_object(index, obj, options) for index, obj in enumerate(objects, 1)]


def read_object(index: int, obj: Any, options: Options) -> Item:
    if not isinstance(obj, dict):
        return Item(index, str(obj)[:80], "").refuse("kind", "not a Kubernetes object (a mapping).")
    kind = str(obj.get("kind"))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else ""
    item = Item(index, f"{kind}/{name}", name)
    if kind != "CronJob":
        return item.refuse("kind", f"a {kind} is not a CronJob: only CronJobs are imported.")
    try:
        item.fields = cronjob_fields(obj, metadata, options, item.warnings)
    except ValueError as exc:
        field, message = exc.args
        return item.refuse(field, message)
    return item


def _mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def cronjob_fields(obj: dict[str, Any], metadata: dict[str, Any], options: Options,
                   warnings: list[str]) -> dict[str, Any]:  # fmt: skip
    spec = _mapping(obj, "spec")
    job_spec = _mapping(_mapping(spec, "jobTemplate"), "spec")
    pod = _mapping(_mapping(job_spec, "template"), "spec")
    expression, zone = schedule_of(spec, options.timezone, warnings)
    fields: dict[str, Any] = {
        "name": metadata.get("name"),
        "description": _annotation(metadata),
        "tags": [f"{k}={v}"[:64] for k, v in sorted(_mapping(metadata, "labels").items())],
        "kind": "command",
        "payload": {"command": command_of(pod, warnings)},
        "schedule": {"type": "cron", "expression": expression},
        "timezone": zone,
        "queue": options.queue,
        "enabled": not bool(spec.get("suspend", False)),
        "concurrency_policy": policy_of(spec),
        "max_retries": min(_number(job_spec, "backoffLimit", BACKOFF_DEFAULT), MAX_RETRIES),
    }
    if "startingDeadlineSeconds" in spec:
        fields["misfire_grace"] = _number(spec, "startingDeadlineSeconds", 0)
    if "activeDeadlineSeconds" in job_spec:
        fields["timeout"] = _number(job_spec, "activeDeadlineSeconds", 0)
    if env := env_of(pod, warnings):
        fields["env"] = env
    unhonoured(spec, job_spec, pod, warnings)
    return fields


def _annotation(metadata: dict[str, Any]) -> str:
    annotations = _mapping(metadata, "annotations")
    text = annotations.get("description") or annotations.get("kubernetes.io/description")
    return text if isinstance(text, str) else ""


def _number(parent: dict[str, Any], key: str, default: int) -> Any:
    return parent.get(key, default)


def schedule_of(spec: dict[str, Any], default_zone: str, warnings: list[str]) -> tuple[str, str]:
    text = spec.get("schedule")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("schedule", "spec.schedule is required: a cron expression.")
    text = text.strip()
    zone = default_zone
    if prefix := TZ_PREFIX.match(text):
        zone, text = prefix[1], prefix[2].strip()
        warnings.append("the CRON_TZ=/TZ= prefix is deprecated in Kubernetes: use spec.timeZone.")
    if isinstance(spec.get("timeZone"), str):
        zone = spec["timeZone"]
    if text.startswith("@") and text.lower() not in DESCRIPTORS:
        raise ValueError("schedule", f"{text!r} is not supported (only @hourly, @daily, ...).")
    return text.lower() if text.startswith("@") else text, zone


def policy_of(spec: dict[str, Any]) -> str:
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy not in POLICIES:
        raise ValueError("concurrency_policy", f"concurrencyPolicy {policy!r} is not "
                         "Allow, Forbid or Replace.")  # fmt: skip
    return POLICIES[policy]


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise ValueError("payload", "the pod template has no container.")
    return containers[0]


def command_of(pod: dict[str, Any], warnings: list[str]) -> str:
    container = _container(pod)
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if not container.get("command"):
        raise ValueError("payload", "the container has no 'command': its image's entrypoint "
                         "cannot be run outside the image.")  # fmt: skip
    if not all(isinstance(word, str | int | float) for word in words):
        raise ValueError("payload", "the container's command and args must be strings.")
    if image := container.get("image"):
        warnings.append(f"image {image!r} is not used: the command runs on a worker, "
                        "which must have the programs it calls.")  # fmt: skip
    containers = pod.get("containers") or []
    if len(containers) > 1:
        warnings.append(f"only the first of {len(containers)} containers is imported.")
    return shlex.join(str(word) for word in words)


def env_of(pod: dict[str, Any], warnings: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in _container(pod).get("env") or []:
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            env[str(entry.get("name"))] = entry["value"]
        elif isinstance(entry, dict):
            warnings.append(f"env {entry.get('name')!r}: valueFrom (secrets, config maps) "
                            "cannot be read here; set it after the import.")  # fmt: skip
    return env


def unhonoured(spec: dict[str, Any], job_spec: dict[str, Any], pod: dict[str, Any],
               warnings: list[str]) -> None:  # fmt: skip
    """Warnings for the fields we read nothing from."""
    for key in sorted(set(spec) - {"schedule", "timeZone", "concurrencyPolicy", "suspend",
                                   "startingDeadlineSeconds", "jobTemplate"}):  # fmt: skip
        warnings.append(f"spec.{key} is not honoured.")
    for key in sorted(set(job_spec) - {"template", "backoffLimit", "activeDeadlineSeconds"}):
        warnings.append(f"jobTemplate.spec.{key} is not honoured.")
    for key in sorted(set(pod) - KNOWN_POD_FIELDS):
        warnings.append(f"the pod's {key} is not honoured.")
    container = pod.get("containers", [{}])[0]
    for key in sorted(set(container) - KNOWN_CONTAINER_FIELDS):
        warnings.append(f"the container's {key} is not honoured.")
