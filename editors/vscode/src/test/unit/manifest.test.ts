/**
 * package.json and the code agree: what the manifest contributes is registered, and what
 * is registered is contributed (VS Code itself cannot run here to find out).
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(__dirname, "..", "..", "..");
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const source = readFileSync(join(root, "src", "extension.ts"), "utf8");
const registered = new Set([...source.matchAll(/registerCommand\(\s*"([\w.]+)"/g)].map((match) => match[1]));
const contributed: { command: string; title: string; category: string }[] = manifest.contributes.commands;

describe("the manifest", () => {
  it("contributes the six task commands under Cronfleet:", () => {
    const titles = contributed.filter((command) => command.category === "Cronfleet").map((command) => command.title);
    for (const title of [
      "Create Scheduled Task",
      "List Scheduled Tasks",
      "Edit Scheduled Task",
      "Enable/Disable Task",
      "Run Task Now",
      "View Task History",
      "Save Task",
      "Log In",
    ]) {
      assert.ok(titles.includes(title), `no command "Cronfleet: ${title}"`);
    }
  });

  it("registers every contributed command, and contributes every registered one", () => {
    assert.deepEqual([...registered].sort(), contributed.map((command) => command.command).sort());
  });

  it("names only contributed commands and its own views in menus", () => {
    const ids = new Set(contributed.map((command) => command.command));
    for (const [menu, entries] of Object.entries(
      manifest.contributes.menus as Record<string, { command: string; when?: string }[]>,
    )) {
      for (const entry of entries) {
        assert.ok(ids.has(entry.command), `${menu} names ${entry.command}`);
        for (const view of entry.when?.match(/view == ([\w.]+)/g) ?? []) {
          assert.equal(view, "view == cronfleet.jobs", `${menu}: ${entry.when}`);
        }
      }
    }
    assert.deepEqual(
      manifest.contributes.views.cronfleet.map((view: { id: string }) => view.id),
      ["cronfleet.jobs"],
    );
    assert.ok(source.includes('registerTreeDataProvider("cronfleet.jobs"'));
  });

  it("points at the compiled entry point and declares the settings it reads", () => {
    assert.ok(existsSync(join(root, manifest.main)), `${manifest.main} missing: compile first`);
    assert.deepEqual(Object.keys(manifest.contributes.configuration.properties).sort(), [
      "cronfleet.token",
      "cronfleet.url",
    ]);
    assert.match(manifest.engines.vscode, /^\^1\.\d+\.\d+$/);
  });
});
