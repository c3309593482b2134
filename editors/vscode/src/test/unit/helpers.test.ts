/** The pure helpers: connection settings, formatting, edited documents. */

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Job } from "../../client";
import {
  checkUrl,
  cliConfigPath,
  DEFAULT_URL,
  readCliConfig,
  resolveConnection,
  secretKey,
  unencrypted,
} from "../../connection";
import {
  changedFields,
  DocumentError,
  editableDocument,
  fieldLine,
  formatDuration,
  jobDescription,
  jobIcon,
  jobLine,
  newJobFields,
  parseSchedule,
  runLine,
} from "../../format";

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "cronfleet-vscode-"));
  const path = join(dir, "config.toml");
  writeFileSync(path, text);
  return path;
}

describe("connection", () => {
  it("finds the CLI's config under XDG_CONFIG_HOME, else ~/.config", () => {
    assert.equal(cliConfigPath({ XDG_CONFIG_HOME: "/x/cfg" }, "/home/a"), "/x/cfg/cronfleet/config.toml");
    assert.equal(cliConfigPath({}, "/home/a"), "/home/a/.config/cronfleet/config.toml");
    assert.equal(cliConfigPath({ XDG_CONFIG_HOME: "relative" }, "/home/a"), "/home/a/.config/cronfleet/config.toml");
  });

  it("reads the top-level url and token, and nothing from a missing file", () => {
    const path = configFile('url = "http://h:1"\ntoken = "abc"\n[other]\ntoken = "no"\n');
    assert.deepEqual(readCliConfig(path), { url: "http://h:1", token: "abc" });
    assert.deepEqual(readCliConfig(join(tmpdir(), "does-not-exist", "config.toml")), {});
    assert.throws(() => readCliConfig(configFile("url = ")), /is not valid TOML/);
  });

  it("prefers the settings, then secret storage, then SCHEDULE_*, then the file", () => {
    const configPath = configFile('url = "http://file"\ntoken = "file-token"\n');
    const env = {};
    assert.deepEqual(resolveConnection({ env, configPath }), {
      url: "http://file",
      token: "file-token",
      tokenSource: configPath,
    });
    assert.equal(resolveConnection({ env: { SCHEDULE_TOKEN: "env" }, configPath }).token, "env");
    assert.equal(
      resolveConnection({ env: { SCHEDULE_TOKEN: "env" }, configPath, secretToken: "secret" }).token,
      "secret",
    );
    const all = resolveConnection({
      env: { SCHEDULE_URL: "http://env" },
      configPath,
      secretToken: "secret",
      settingToken: "set",
      settingUrl: "http://set",
    });
    assert.deepEqual([all.url, all.token], ["http://set", "set"]);
    assert.equal(resolveConnection({ env: { SCHEDULE_URL: "http://env" }, configPath }).url, "http://env");
    const none = resolveConnection({ env, configPath: join(tmpdir(), "nope.toml") });
    assert.deepEqual(none, { url: DEFAULT_URL, token: undefined, tokenSource: undefined });
  });

  it("never sends the CLI file's token to another server than the file's", () => {
    const configPath = configFile('url = "http://file/"\ntoken = "file-token"\n');
    assert.equal(resolveConnection({ env: {}, configPath, settingUrl: "http://file" }).token, "file-token");
    assert.equal(resolveConnection({ env: {}, configPath, settingUrl: "http://elsewhere" }).token, undefined);
    assert.equal(resolveConnection({ env: { SCHEDULE_URL: "http://elsewhere" }, configPath }).token, undefined);
    const tokenOnly = configFile('token = "t"\n');
    assert.equal(resolveConnection({ env: {}, configPath: tokenOnly, settingUrl: "http://any" }).token, "t");
  });

  it("keeps a stored token per server", () => {
    assert.equal(secretKey("http://h:8000/"), secretKey("http://h:8000"));
    assert.notEqual(secretKey("http://h:8000"), secretKey("http://other:8000"));
  });

  it("knows when a password would cross the network unencrypted", () => {
    assert.deepEqual(
      [
        "http://cron.example.com",
        "https://cron.example.com",
        "http://127.0.0.1:8000",
        "http://localhost",
        "http://[::1]:80",
        "nonsense",
      ].map(unencrypted),
      [true, false, false, false, false, false],
    );
  });

  it("accepts only http(s) URLs", () => {
    assert.equal(checkUrl("https://cron.example.com"), undefined);
    assert.match(checkUrl("file:///etc/passwd") ?? "", /http/);
    assert.match(checkUrl("not a url") ?? "", /Not a URL/);
  });
});

const job: Job = {
  id: 7,
  name: "backup",
  kind: "command",
  payload: { command: "true" },
  schedule: "daily at 10:30",
  timezone: "UTC",
  enabled: true,
  status: "active",
  schedule_description: "Every day at 10:30",
  next_run_at: "2026-11-29T10:30:00Z",
  last_status: "failed",
  owner: "alice",
  total_runs: 3,
};

describe("format", () => {
  it("writes durations for people", () => {
    assert.deepEqual([null, 0.0353, 12.4, 75, 3 * 3600 + 5 * 60].map(formatDuration), [
      "-",
      "0.0 s",
      "12 s",
      "1 min 15 s",
      "3 h 5 min",
    ]);
  });

  it("shows a run's status, duration and exit code on one line", () => {
    const line = runLine({
      id: 42,
      job: 7,
      trigger: "manual",
      attempt: 1,
      status: "succeeded",
      started_at: "2026-11-28T17:00:01.5Z",
      duration: 1.25,
      exit_code: 0,
    });
    assert.match(line, /^#42\s+succeeded\s+2026-11-28 17:00:01Z\s+1\.3 s\s+exit 0\s+manual$/);
  });

  it("shows a job on one line of the list", () => {
    assert.match(jobLine(job), /^#7\s+backup\s+active\s+failed\s+2026-11-29 10:30:00Z\s+Every day at 10:30$/);
    assert.match(jobLine({ ...job, enabled: false, last_status: null }), /^#7\s+backup\s+paused\s+-\s+-\s+Every day/);
  });

  it("picks the tree's icon from pause and the last status", () => {
    assert.equal(jobIcon({ ...job, enabled: false }), "debug-pause");
    assert.equal(jobIcon(job), "error");
    assert.equal(jobIcon({ ...job, last_status: "succeeded" }), "pass");
    assert.equal(jobIcon({ ...job, last_status: "running" }), "sync~spin");
    assert.equal(jobIcon({ ...job, last_status: null }), "circle-outline");
    assert.equal(jobDescription(job), "active · last failed · next 2026-11-29 10:30:00Z");
    assert.equal(jobDescription({ ...job, enabled: false, last_status: null }), "paused · never run");
  });

  it("makes a new job's fields from the inputs", () => {
    assert.deepEqual(newJobFields(" n ", "http", "https://x", "every 5 minutes", ""), {
      name: "n",
      kind: "http",
      payload: { url: "https://x", method: "GET" },
      schedule: "every 5 minutes",
      timezone: "UTC",
    });
    assert.deepEqual(newJobFields("n", "commands", "a ;; b;;", "manual", "Europe/Paris").payload, {
      commands: ["a", "b"],
      stop_on_failure: true,
    });
    assert.throws(() => newJobFields("n", "nope", "x", "manual", "UTC"), /Unknown kind/);
    assert.deepEqual(parseSchedule(' {"type": "hourly", "minute": 5} '), { type: "hourly", minute: 5 });
    assert.equal(parseSchedule("{broken"), "{broken");
  });
});

describe("edited documents", () => {
  it("leaves the read-only fields out of the document", () => {
    const document = JSON.parse(editableDocument(job));
    assert.deepEqual(Object.keys(document).sort(), ["enabled", "kind", "name", "payload", "schedule", "timezone"]);
  });

  it("sends only what changed", () => {
    const edited = JSON.parse(editableDocument(job));
    edited.schedule = "every 5 minutes";
    edited.payload.command = "echo hi";
    delete edited.timezone; // removed: kept as it is
    assert.deepEqual(changedFields(job, JSON.stringify(edited)), {
      schedule: "every 5 minutes",
      payload: { command: "echo hi" },
    });
    assert.deepEqual(changedFields(job, editableDocument(job)), {});
  });

  it("refuses broken JSON, non-objects and changed read-only fields, naming them", () => {
    assert.throws(
      () => changedFields(job, "{"),
      (error: unknown) => error instanceof DocumentError && /not valid JSON/.test(error.fields.detail[0]),
    );
    assert.throws(() => changedFields(job, "[1]"), /one JSON object/);
    assert.throws(
      () => changedFields(job, JSON.stringify({ owner: "mallory", total_runs: 3 })),
      (error: unknown) => {
        assert.ok(error instanceof DocumentError);
        assert.deepEqual(Object.keys(error.fields), ["owner"]);
        return true;
      },
    );
  });

  it("finds the line of a field, nested ones too", () => {
    const text = editableDocument({ ...job, description: "payload: here", env: { command: "x" } });
    const lines = text.split("\n");
    assert.match(lines[fieldLine(text, "schedule")], /"schedule":/);
    assert.match(lines[fieldLine(text, "payload.command")], /"command": "true"/);
    assert.equal(fieldLine(text, "nope"), 0);
    assert.match(lines[fieldLine(text, "payload.0.missing")], /"payload":/);
  });
});
