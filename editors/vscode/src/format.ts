/**
 * Pure helpers of the extension: how jobs and runs are shown, what a new job's fields are,
 * and how an edited job document becomes a PATCH. No `vscode` import.
 */

import type { Job, Run } from "./client";

/** What "Create Scheduled Task" offers, and what its one input fills in the payload. */
export const KINDS: Record<
  string,
  { prompt: string; placeholder: string; payload: (value: string) => Record<string, unknown> }
> = {
  command: {
    prompt: "Shell command",
    placeholder: "tar czf /backups/home.tgz /home",
    payload: (value) => ({ command: value }),
  },
  commands: {
    prompt: "Commands, separated by ' ;; ' (run in order, stop on the first failure)",
    placeholder: "make build ;; make deploy",
    payload: (value) => ({
      commands: value
        .split(";;")
        .map((part) => part.trim())
        .filter(Boolean),
      stop_on_failure: true,
    }),
  },
  http: {
    prompt: "URL to call (GET)",
    placeholder: "https://example.com/health",
    payload: (value) => ({ url: value, method: "GET" }),
  },
  script: { prompt: "Script path", placeholder: "scripts/cleanup.sh", payload: (value) => ({ path: value, args: [] }) },
  python: { prompt: "Python code", placeholder: "print('hello')", payload: (value) => ({ code: value }) },
  pytest: { prompt: "Test path", placeholder: "tests/", payload: (value) => ({ path: value, args: [] }) },
  celery: {
    prompt: "Celery task (dotted name)",
    placeholder: "app.tasks.cleanup",
    payload: (value) => ({ task: value, args: [], kwargs: {} }),
  },
};

/** A schedule as typed: JSON when it looks like an object, else the string itself. */
export function parseSchedule(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return trimmed; // the server says what is wrong with it
    }
  }
  return trimmed;
}

export function newJobFields(
  name: string,
  kind: string,
  target: string,
  schedule: string,
  timezone: string,
): Record<string, unknown> {
  const spec = KINDS[kind];
  if (!spec) {
    throw new Error(`Unknown kind ${kind}: one of ${Object.keys(KINDS).join(", ")}.`);
  }
  return {
    name: name.trim(),
    kind,
    payload: spec.payload(target),
    schedule: parseSchedule(schedule),
    timezone: timezone.trim() || "UTC",
  };
}

/** "1.2 s", "3 min 4 s", "2 h 5 min"; "-" for none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return "-";
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const whole = Math.round(seconds);
  if (whole < 3600) {
    return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  }
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}

/** An ISO time as "2026-11-28 17:00:01Z" (UTC, seconds); "-" for none. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return "-";
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** One line of a job's history: id, status, start, duration, exit code, trigger. */
export function runLine(run: Run): string {
  const exit = run.exit_code === null || run.exit_code === undefined ? "-" : String(run.exit_code);
  return [
    `#${run.id}`.padEnd(8),
    run.status.padEnd(10),
    formatTime(run.started_at ?? run.scheduled_for).padEnd(21),
    formatDuration(run.duration).padEnd(12),
    `exit ${exit}`.padEnd(9),
    run.trigger,
  ].join(" ");
}

/** One line of the task list: id, name, state, last status, next run, schedule. */
export function jobLine(job: Job): string {
  return [
    `#${job.id}`.padEnd(7),
    job.name.slice(0, 30).padEnd(30),
    (job.enabled ? job.status : "paused").padEnd(9),
    (job.last_status ?? "-").padEnd(10),
    formatTime(job.enabled ? job.next_run_at : null).padEnd(21),
    job.schedule_description ?? JSON.stringify(job.schedule),
  ].join(" ");
}

/** The codicon for a job in the tree: paused, else its last run's status. */
export function jobIcon(job: Pick<Job, "enabled" | "status" | "last_status">): string {
  if (!job.enabled) {
    return "debug-pause";
  }
  if (job.status === "completed") {
    return "check-all";
  }
  switch (job.last_status) {
    case "succeeded":
      return "pass";
    case "failed":
    case "timed_out":
    case "lost":
      return "error";
    case "running":
    case "queued":
    case "waiting":
      return "sync~spin";
    case "cancelled":
    case "skipped":
      return "circle-slash";
    default:
      return "circle-outline";
  }
}

/** The tree item's second line: state, last status, next run. */
export function jobDescription(job: Job): string {
  const state = job.enabled ? job.status : "paused";
  const last = job.last_status ? `last ${job.last_status}` : "never run";
  const next = job.enabled && job.next_run_at ? `next ${formatTime(job.next_run_at)}` : "";
  return [state, last, next].filter(Boolean).join(" · ");
}

/** Fields the server reports but never takes. */
export const READ_ONLY_FIELDS = new Set([
  "id",
  "owner",
  "status",
  "schedule_description",
  "next_run_at",
  "last_run_at",
  "last_status",
  "total_runs",
  "failed_runs",
  "paused_reason",
  "created_at",
  "updated_at",
]);

/** The job as the document the user edits: its writable fields, as JSON. */
export function editableDocument(job: Job): string {
  const fields = Object.fromEntries(Object.entries(job).filter(([key]) => !READ_ONLY_FIELDS.has(key)));
  return JSON.stringify(fields, null, 2) + "\n";
}

/**
 * The PATCH body for an edited document: the top-level fields whose value changed. A
 * field removed from the document keeps its value; a read-only field changed is refused.
 */
export function changedFields(original: Job, editedText: string): Record<string, unknown> {
  let edited: unknown;
  try {
    edited = JSON.parse(editedText);
  } catch (error) {
    throw new DocumentError({ detail: [`not valid JSON: ${error instanceof Error ? error.message : String(error)}`] });
  }
  if (!edited || typeof edited !== "object" || Array.isArray(edited)) {
    throw new DocumentError({ detail: ["the document must be one JSON object of the job's fields"] });
  }
  const changes: Record<string, unknown> = {};
  const refused: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(edited)) {
    if (JSON.stringify(value) === JSON.stringify(original[key])) {
      continue;
    }
    if (READ_ONLY_FIELDS.has(key)) {
      refused[key] = ["is read-only: the server sets it"];
    } else {
      changes[key] = value;
    }
  }
  if (Object.keys(refused).length) {
    throw new DocumentError(refused);
  }
  return changes;
}

/** An edited document refused before it was sent, with its field errors. */
export class DocumentError extends Error {
  constructor(readonly fields: Record<string, string[]>) {
    super(
      Object.entries(fields)
        .map(([field, messages]) => `${field}: ${messages.join(" ")}`)
        .join("; "),
    );
    this.name = "DocumentError";
  }
}

/**
 * Where a (dotted) field is in a JSON document: the 0-based line of its key, found by
 * following the dotted path's keys downwards; the first line when no key matches.
 */
export function fieldLine(text: string, field: string): number {
  const lines = text.split("\n");
  let from = 0;
  let found = 0;
  for (const key of field.split(".")) {
    if (/^\d+$/.test(key)) {
      continue; // list indexes: the list's key line is close enough
    }
    const pattern = `"${key.replace(/["\\]/g, "\\$&")}":`;
    const index = lines.findIndex((line, number) => number >= from && line.includes(pattern));
    if (index < 0) {
      break;
    }
    found = index;
    from = index + 1;
  }
  return found;
}
