/**
 * The cronfleet REST API (/api/v1/), as the `schedule` CLI speaks it: `Authorization:
 * Token <key>`, JSON in and out. No `vscode` import here, so that plain Node can test it
 * against a real server.
 */

export type RunStatus =
  "queued" | "waiting" | "running" | "succeeded" | "failed" | "timed_out" | "cancelled" | "skipped" | "lost";

export const FINISHED_STATUSES: readonly string[] = [
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "skipped",
  "lost",
];

export interface Job {
  id: number;
  name: string;
  kind: string;
  payload: Record<string, unknown>;
  schedule: unknown;
  timezone: string;
  enabled: boolean;
  status: string;
  schedule_description?: string;
  next_run_at?: string | null;
  last_run_at?: string | null;
  last_status?: string | null;
  [field: string]: unknown;
}

export interface Run {
  id: number;
  job: number;
  job_name?: string;
  trigger: string;
  attempt: number;
  status: RunStatus;
  scheduled_for?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  duration?: number | null;
  exit_code?: number | null;
  output?: string;
  error?: string;
  [field: string]: unknown;
}

export interface RunLog {
  id: number;
  status: RunStatus;
  finished: boolean;
  offset: number;
  next_offset: number;
  output: string;
}

export interface Preview {
  description: string;
  timezone: string;
  next_runs: string[];
  next_runs_local?: string[];
  warnings?: string[];
}

/** Field name (dotted for nested ones: "payload.command") to its messages. */
export type FieldErrors = Record<string, string[]>;

/** An answer the API refused, or no answer at all (status 0), with what to do about it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fields: FieldErrors = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Flatten DRF's error body ({"payload": {"command": ["..."]}, "detail": "..."}) to
 * dotted field names and lists of messages. */
export function flattenErrors(body: unknown, prefix = ""): FieldErrors {
  const out: FieldErrors = {};
  const put = (key: string, message: string): void => {
    (out[key || "detail"] ??= []).push(message);
  };
  if (typeof body === "string") {
    put(prefix, body);
  } else if (Array.isArray(body)) {
    body.forEach((item, index) => {
      if (typeof item === "string") {
        put(prefix, item);
      } else {
        Object.assign(out, flattenErrors(item, prefix ? `${prefix}.${index}` : String(index)));
      }
    });
  } else if (body && typeof body === "object") {
    for (const [key, value] of Object.entries(body)) {
      const name = key === "non_field_errors" || key === "detail" ? prefix : prefix ? `${prefix}.${key}` : key;
      for (const [field, messages] of Object.entries(flattenErrors(value, name))) {
        (out[field] ??= []).push(...messages);
      }
    }
  }
  return out;
}

/** A message for a refused answer that says what to do next. */
export function explain(status: number, fields: FieldErrors, baseUrl: string): string {
  const detail = (fields.detail ?? []).join(" ");
  switch (status) {
    case 401:
      return `Not logged in to ${baseUrl} (${detail || "no valid token"}). Run "Cronfleet: Log In", or set cronfleet.token.`;
    case 403:
      return `Refused by ${baseUrl}: ${detail || "you may not do this"}. Ask an admin for the right, or use another account.`;
    case 404:
      return `Not found: ${detail || "it does not exist or is not yours"}. Refresh the task list.`;
    case 429:
      return `Too many requests: ${detail || "slow down"}. Try again in a moment.`;
    default: {
      const listed = Object.entries(fields)
        .map(([field, messages]) => (field === "detail" ? messages.join(" ") : `${field}: ${messages.join(" ")}`))
        .join("; ");
      return `The server answered ${status}${listed ? `: ${listed}` : ""}.`;
    }
  }
}

export interface ClientOptions {
  url: string;
  token?: string;
  /** Milliseconds before a request is given up. */
  timeoutMs?: number;
}

export class CronfleetClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    this.baseUrl = options.url.replace(/\/+$/, "");
    this.token = options.token || undefined;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** One call; the parsed JSON body, or an ApiError that says what to do. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) {
      headers.Authorization = `Token ${this.token}`;
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: "error",
      });
    } catch (error) {
      const reason =
        error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      throw new ApiError(
        `Cannot reach cronfleet at ${this.baseUrl} (${reason}). Check the cronfleet.url setting and that the server is running.`,
        0,
      );
    }
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!response.ok) {
      const fields = parsed === undefined ? {} : flattenErrors(parsed);
      throw new ApiError(explain(response.status, fields, this.baseUrl), response.status, fields);
    }
    if (text && parsed === undefined) {
      throw new ApiError(
        `${this.baseUrl}${path} did not answer JSON: is cronfleet.url the cronfleet server?`,
        response.status,
      );
    }
    return parsed as T;
  }

  /** POST /api/v1/auth/token/: a username and password for the API token. */
  async login(username: string, password: string): Promise<string> {
    const answer = await this.request<{ token: string }>("POST", "/api/v1/auth/token/", { username, password });
    return answer.token;
  }

  /** Every job of the caller, page after page. */
  async listJobs(): Promise<Job[]> {
    const jobs: Job[] = [];
    for (let page = 1; ; page++) {
      const answer = await this.request<{ results: Job[]; next: string | null }>(
        "GET",
        `/api/v1/jobs/?page=${page}&page_size=500`,
      );
      jobs.push(...answer.results);
      if (!answer.next) {
        return jobs;
      }
    }
  }

  async getJob(id: number): Promise<Job> {
    return this.request("GET", `/api/v1/jobs/${jobId(id)}/`);
  }

  async createJob(fields: Record<string, unknown>): Promise<Job> {
    return this.request("POST", "/api/v1/jobs/", fields);
  }

  async updateJob(id: number, fields: Record<string, unknown>): Promise<Job> {
    return this.request("PATCH", `/api/v1/jobs/${jobId(id)}/`, fields);
  }

  /** Resume (enabled) or pause (disabled) the job. */
  async setEnabled(id: number, enabled: boolean): Promise<Job> {
    return this.request("POST", `/api/v1/jobs/${jobId(id)}/${enabled ? "resume" : "pause"}/`);
  }

  async runNow(id: number): Promise<Run> {
    return this.request("POST", `/api/v1/jobs/${jobId(id)}/run/`);
  }

  /** The job's newest runs, newest first (one page: at most ``limit``). */
  async history(id: number, limit = 50): Promise<Run[]> {
    const answer = await this.request<{ results: Run[] }>("GET", `/api/v1/jobs/${jobId(id)}/runs/?page_size=${limit}`);
    return answer.results;
  }

  async getRun(id: number): Promise<Run> {
    return this.request("GET", `/api/v1/runs/${jobId(id)}/`);
  }

  async log(runId: number, offset = 0): Promise<RunLog> {
    return this.request("GET", `/api/v1/runs/${jobId(runId)}/log/?offset=${Math.max(0, Math.floor(offset))}`);
  }

  async preview(schedule: unknown, timezone = "UTC", count = 5): Promise<Preview> {
    return this.request("POST", "/api/v1/schedules/preview/", { schedule, timezone, count });
  }

  /**
   * Follow a run's output until it ends: ``onOutput`` gets each new piece. Resolves with
   * the last log answer (finished). ``isCancelled`` stops following early.
   */
  async followLog(
    runId: number,
    onOutput: (text: string) => void,
    options: { intervalMs?: number; isCancelled?: () => boolean } = {},
  ): Promise<RunLog> {
    let offset = 0;
    for (;;) {
      const answer = await this.log(runId, offset);
      if (answer.offset < offset) {
        onOutput("\n[the stored output was cut; reading it again from its start]\n");
      }
      if (answer.output) {
        onOutput(answer.output);
      }
      offset = answer.next_offset;
      if (answer.finished || options.isCancelled?.()) {
        return answer;
      }
      await sleep(options.intervalMs ?? 1000);
    }
  }

  /** Poll the run until it has ended (or ``timeoutMs`` passes: an ApiError). */
  async waitRun(runId: number, timeoutMs = 60_000, intervalMs = 500): Promise<Run> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.getRun(runId);
      if (FINISHED_STATUSES.includes(run.status)) {
        return run;
      }
      if (Date.now() > deadline) {
        throw new ApiError(`Run ${runId} is still ${run.status} after ${timeoutMs / 1000} s.`, 0);
      }
      await sleep(intervalMs);
    }
  }
}

/** An id as the URL carries it: a positive whole number, never a path. */
function jobId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new ApiError(`Not an id: ${String(id)}.`, 0);
  }
  return id;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
