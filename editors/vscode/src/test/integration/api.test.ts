/**
 * The extension's API client against a real cronfleet (tests/test_vscode_client.py starts
 * it: a live server on the test database, a Celery worker and beat), as the commands use it.
 *
 * Environment: CRONFLEET_URL, CRONFLEET_TOKEN (the owner's), CRONFLEET_USERNAME and
 * CRONFLEET_PASSWORD (the same owner), CRONFLEET_OTHER_JOB (a job of another user).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { ApiError, CronfleetClient, type Job } from "../../client";
import { changedFields, editableDocument, newJobFields } from "../../format";

const env = process.env;
const missing = [
  "CRONFLEET_URL",
  "CRONFLEET_TOKEN",
  "CRONFLEET_USERNAME",
  "CRONFLEET_PASSWORD",
  "CRONFLEET_OTHER_JOB",
].filter((name) => !env[name]);
const skip = missing.length ? `needs ${missing.join(", ")} (run it through tests/test_vscode_client.py)` : false;

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    return error.status;
  }
}

describe("the API client against the real stack", { skip }, () => {
  const url = env.CRONFLEET_URL ?? "";
  const api = new CronfleetClient({ url, token: env.CRONFLEET_TOKEN, timeoutMs: 20_000 });
  const marker = `vscode-${randomUUID()}`;
  let job: Job;

  it("logs in with a username and password, and the token works", async () => {
    const token = await new CronfleetClient({ url }).login(env.CRONFLEET_USERNAME ?? "", env.CRONFLEET_PASSWORD ?? "");
    const jobs = await new CronfleetClient({ url, token }).listJobs();
    assert.ok(Array.isArray(jobs));
    await assert.rejects(
      new CronfleetClient({ url }).login(env.CRONFLEET_USERNAME ?? "", "wrong-password"),
      (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, 400);
        return true;
      },
    );
  });

  it("previews a schedule, and names the field of a bad one", async () => {
    const preview = await api.preview("daily at 03:00", "Europe/Paris", 3);
    assert.match(preview.description, /03:00/);
    assert.equal(preview.next_runs.length, 3);
    assert.ok(
      preview.next_runs.every((time) => /T0[12]:00:00/.test(time)),
      preview.next_runs.join(" "),
    );
    await assert.rejects(api.preview("every blue moon"), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 400);
      assert.ok(error.fields.schedule?.length, JSON.stringify(error.fields));
      return true;
    });
  });

  it("creates a job as Create Scheduled Task does", async () => {
    job = await api.createJob(
      newJobFields(`vscode-${marker.slice(7, 15)}`, "command", "echo created", "daily at 03:00", "Europe/Paris"),
    );
    assert.equal(job.kind, "command");
    assert.deepEqual(job.payload.command, "echo created");
    assert.equal(job.timezone, "Europe/Paris");
    assert.equal(job.enabled, true);
    assert.ok(job.next_run_at);
  });

  it("lists it", async () => {
    const jobs = await api.listJobs();
    assert.ok(jobs.some((listed) => listed.id === job.id && listed.name === job.name));
    assert.ok(!jobs.some((listed) => listed.id === Number(env.CRONFLEET_OTHER_JOB)), "another user's job is listed");
  });

  it("edits it through its document: only what changed is sent; a bad field is named", async () => {
    const document = JSON.parse(editableDocument(await api.getJob(job.id)));
    // A pause between the lines: the log is followed while the run is running.
    document.payload = { command: `echo ${marker}; sleep 3; echo second line` };
    document.schedule = "manual";
    document.description = "edited from VS Code";
    const changes = changedFields(job, JSON.stringify(document, null, 2));
    assert.deepEqual(Object.keys(changes).sort(), ["description", "payload", "schedule"]);
    job = await api.updateJob(job.id, changes);
    assert.equal(job.description, "edited from VS Code");
    assert.equal(job.schedule_description?.toLowerCase().includes("manual"), true, job.schedule_description);
    await assert.rejects(api.updateJob(job.id, { schedule: "every blue moon", timeout: -5 }), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 400);
      assert.ok(error.fields.schedule?.length && error.fields.timeout?.length, JSON.stringify(error.fields));
      return true;
    });
    assert.equal((await api.getJob(job.id)).schedule_description, job.schedule_description); // unchanged
  });

  it("disables and enables it", async () => {
    const paused = await api.setEnabled(job.id, false);
    assert.equal(paused.enabled, false);
    assert.equal(paused.status, "paused");
    assert.equal((await api.getJob(job.id)).enabled, false);
    const resumed = await api.setEnabled(job.id, true);
    assert.equal(resumed.enabled, true);
    assert.notEqual(resumed.status, "paused");
  });

  it("runs it now, follows it to its end, and finds it in the history with its log", async () => {
    const queued = await api.runNow(job.id);
    assert.equal(queued.trigger, "manual");
    const followed: string[] = [];
    const last = await api.followLog(queued.id, (text) => followed.push(text), { intervalMs: 200 });
    assert.equal(last.finished, true);
    assert.equal(followed.join(""), `${marker}\nsecond line\n`);
    // Read live: the first line came in one answer, the second in a later one.
    assert.ok(followed.length >= 2 && followed[0] === `${marker}\n`, JSON.stringify(followed));
    const run = await api.waitRun(queued.id, 30_000);
    assert.equal(run.status, "succeeded");
    assert.equal(run.exit_code, 0);
    assert.ok(typeof run.duration === "number" && run.duration >= 3, String(run.duration));
    const history = await api.history(job.id);
    assert.equal(history[0].id, run.id);
    assert.equal(history[0].status, "succeeded");
    const log = await api.log(run.id, marker.length + 1);
    assert.equal(log.output, "second line\n");
    assert.equal((await api.getJob(job.id)).last_status, "succeeded");
  });

  it("gets 404 for another user's job and its runs, and changes nothing there", async () => {
    const other = Number(env.CRONFLEET_OTHER_JOB);
    assert.equal(await status(api.getJob(other)), 404);
    assert.equal(await status(api.updateJob(other, { description: "mine now" })), 404);
    assert.equal(await status(api.setEnabled(other, false)), 404);
    assert.equal(await status(api.runNow(other)), 404);
    assert.equal(await status(api.history(other)), 404);
    await assert.rejects(api.getJob(other), /Not found/);
  });

  it("gets 401 with a bad token or none, with a message that says to log in", async () => {
    for (const token of ["0".repeat(40), undefined]) {
      await assert.rejects(new CronfleetClient({ url, token }).listJobs(), (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, 401);
        assert.match(error.message, /Cronfleet: Log In/);
        return true;
      });
    }
  });
});
