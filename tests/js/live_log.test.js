/* live_log.js (the admin's live run output) in Node, on a minimal DOM: a <pre> of text
 * nodes. Run by tests/test_live_log_js.py (node --test). */
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = path.join(__dirname, "..", "..", "scheduler_app", "static", "scheduler_app", "live_log.js");

class Pre {
  constructor() { this.nodes = []; this.scrollTop = 0; this.scrollHeight = 0; this.clientHeight = 0; }
  get textContent() { return this.nodes.map((node) => node.data).join(""); }
  set textContent(text) { this.nodes = text ? [{data: text}] : []; }
  appendChild(node) { this.nodes.push(node); return node; }
  removeChild(node) { this.nodes.splice(this.nodes.indexOf(node), 1); return node; }
  get firstChild() { return this.nodes[0] || null; }
}

function load() {
  const window = {setTimeout: () => 0, clearTimeout: () => {}};
  const document = {createTextNode: (data) => ({data: data})};
  vm.runInNewContext(fs.readFileSync(SOURCE, "utf8"), {window: window, document: document});
  return window.CronfleetLiveLog;
}

const LiveLog = load();

function follow(options) {
  const pre = new Pre();
  return {pre: pre, log: new LiveLog(pre, "/log/", options || {})};
}

// One answer of GET /api/v1/runs/{id}/log/ after ``read`` characters, ``output`` new.
function answer(read, output) {
  return {offset: read, next_offset: read + output.length, output: output, finished: false};
}

test("a progress bar line shows its last rewrite, as the server shows it", () => {
  assert.strictEqual(LiveLog.visibleControls("10%\r20%\r30%\n"), "30%\n");
  assert.strictEqual(LiveLog.visibleControls("dos\r\nlines\r\n"), "dos\nlines\n");
  assert.strictEqual(LiveLog.visibleControls("a\r\x1b[0m\x07\nb\r"), "\u241b[0m\u2407\nb");
});

test("a line rewritten across answers is redrawn, not appended to", () => {
  const {pre, log} = follow();
  log.append(answer(0, "start\n10%\r"));
  assert.strictEqual(pre.textContent, "start\n10%");
  log.append(answer(11, "20%\r30"));
  assert.strictEqual(pre.textContent, "start\n30");
  log.append(answer(17, "%\ndone\n"));
  assert.strictEqual(pre.textContent, "start\n30%\ndone\n");
});

test("a cut output is read again whole", () => {
  const {pre, log} = follow();
  log.append(answer(0, "one\ntw"));
  log.append({offset: 0, next_offset: 4, output: "new\n", finished: false});
  assert.strictEqual(pre.textContent, "new\n");
});
