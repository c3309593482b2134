/**
 * The client's HTTP side against a small local server that answers as the API does
 * (the real API is exercised by test/integration against the real stack).
 */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ApiError, CronfleetClient, explain, flattenErrors } from "../../client";

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

let server: Server;
let url: string;
let handler: Handler;
const seen: { method?: string; url?: string; auth?: string; body?: string; type?: string }[] = [];

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "Content-Type": "application/json" });
  response.end(JSON.stringify(body));
}

before(async () => {
  server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      seen.push({
        method: request.method,
        url: request.url,
        auth: request.headers.authorization,
        body,
        type: request.headers["content-type"],
      });
      handler(request, body, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(() => server.close());

function last() {
  return seen[seen.length - 1];
}

describe("CronfleetClient", () => {
  it("sends the token and JSON, and reads JSON", async () => {
    handler = (_request, _body, response) => json(response, 200, { id: 3, name: "x", enabled: false });
    const job = await new CronfleetClient({ url, token: "abc" }).updateJob(3, { enabled: false });
    assert.equal(job.id, 3);
    assert.deepEqual(last(), {
      method: "PATCH",
      url: "/api/v1/jobs/3/",
      auth: "Token abc",
      body: '{"enabled":false}',
      type: "application/json",
    });
  });

  it("sends no Authorization header without a token (logging in)", async () => {
    handler = (_request, _body, response) => json(response, 200, { token: "t0k" });
    const token = await new CronfleetClient({ url }).login("alice", "pw");
    assert.equal(token, "t0k");
    assert.equal(last().auth, undefined);
    assert.deepEqual(JSON.parse(last().body ?? ""), { username: "alice", password: "pw" });
  });

  it("reads every page of jobs", async () => {
    handler = (request, _body, response) => {
      const page = Number(new URL(request.url ?? "", url).searchParams.get("page"));
      json(response, 200, {
        count: 3,
        next: page < 2 ? "more" : null,
        results: page < 2 ? [{ id: 1 }, { id: 2 }] : [{ id: 3 }],
      });
    };
    const jobs = await new CronfleetClient({ url, token: "t" }).listJobs();
    assert.deepEqual(
      jobs.map((job) => job.id),
      [1, 2, 3],
    );
  });

  it("turns a 400 into field errors", async () => {
    handler = (_request, _body, response) =>
      json(response, 400, { schedule: ["Not a schedule."], payload: { command: ["Required."] } });
    await assert.rejects(new CronfleetClient({ url, token: "t" }).createJob({}), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 400);
      assert.deepEqual(error.fields, { schedule: ["Not a schedule."], "payload.command": ["Required."] });
      assert.match(error.message, /schedule: Not a schedule\./);
      return true;
    });
  });

  for (const [status, pattern] of [
    [401, /Not logged in.*Cronfleet: Log In/],
    [403, /Refused.*Ask an admin/],
    [404, /Not found/],
    [429, /Too many requests/],
  ] as const) {
    it(`says what to do on ${status}`, async () => {
      handler = (_request, _body, response) => json(response, status, { detail: "nope" });
      await assert.rejects(new CronfleetClient({ url, token: "t" }).getJob(1), (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, status);
        assert.match(error.message, pattern);
        return true;
      });
    });
  }

  it("says the server is unreachable, with the URL", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(
      new CronfleetClient({ url: `http://127.0.0.1:${port}`, token: "t" }).listJobs(),
      (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, 0);
        assert.match(error.message, new RegExp(`Cannot reach cronfleet at http://127.0.0.1:${port}.*cronfleet.url`));
        return true;
      },
    );
  });

  it("says when the answer is not JSON (a wrong URL)", async () => {
    handler = (_request, _body, response) => {
      response.writeHead(200, { "Content-Type": "text/html" });
      response.end("<html>hello</html>");
    };
    await assert.rejects(new CronfleetClient({ url, token: "t" }).getJob(1), /did not answer JSON/);
  });

  it("refuses ids that are not positive whole numbers, before any request", async () => {
    const before = seen.length;
    const api = new CronfleetClient({ url, token: "t" });
    for (const id of [0, -1, 1.5, Number.NaN, "1/../../admin" as unknown as number]) {
      await assert.rejects(api.getJob(id), /Not an id/);
    }
    assert.equal(seen.length, before);
  });

  it("follows a log by offset until the run has finished", async () => {
    const pieces = ["one\n", "two\n", "three\n"];
    handler = (request, _body, response) => {
      const offset = Number(new URL(request.url ?? "", url).searchParams.get("offset"));
      const whole = pieces.join("");
      const served = pieces
        .slice(0, Math.min(pieces.length, seen.filter((s) => s.url?.includes("/log/")).length))
        .join("");
      json(response, 200, {
        id: 9,
        status: "running",
        finished: served === whole,
        offset,
        next_offset: served.length,
        output: served.slice(offset),
      });
    };
    const got: string[] = [];
    const final = await new CronfleetClient({ url, token: "t" }).followLog(9, (text) => got.push(text), {
      intervalMs: 1,
    });
    assert.equal(got.join(""), "one\ntwo\nthree\n");
    assert.equal(final.finished, true);
    const offsets = seen
      .filter((s) => s.url?.includes("/runs/9/log/"))
      .map((s) => new URL(s.url ?? "", url).searchParams.get("offset"));
    assert.deepEqual(offsets, ["0", "4", "8"]);
  });
});

describe("flattenErrors and explain", () => {
  it("flattens nested and listed errors with dotted names", () => {
    assert.deepEqual(flattenErrors({ non_field_errors: ["bad"], env: { A: ["x"] }, tags: [{ name: ["y"] }] }), {
      detail: ["bad"],
      "env.A": ["x"],
      "tags.0.name": ["y"],
    });
    assert.deepEqual(flattenErrors("plain"), { detail: ["plain"] });
  });

  it("lists the fields of other errors", () => {
    assert.equal(explain(409, { detail: ["already ended"] }, "http://h"), "The server answered 409: already ended.");
  });
});
