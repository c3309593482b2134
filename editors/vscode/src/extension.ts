/** The extension's glue: commands, the tree view, the job documents and the output channel. */

import * as vscode from "vscode";
import { ApiError, CronfleetClient, type Job, type Run } from "./client";
import { checkUrl, resolveConnection, secretKey, unencrypted } from "./connection";
import { formatDuration, formatTime, jobLine, KINDS, newJobFields, parseSchedule, runLine } from "./format";
import { JobDocuments, jobUri, SCHEME } from "./jobDocuments";
import { JobItem, JobTreeProvider } from "./tree";

let output: vscode.OutputChannel;
let secrets: vscode.SecretStorage;
let tree: JobTreeProvider;

/** A client for the configured server; an ApiError saying how to log in when no token. */
async function client(): Promise<CronfleetClient> {
  const settings = vscode.workspace.getConfiguration("cronfleet");
  const sources = {
    settingUrl: settings.get<string>("url") || undefined,
    settingToken: settings.get<string>("token") || undefined,
  };
  const { url } = resolveConnection(sources);
  const connection = resolveConnection({ ...sources, secretToken: await secrets.get(secretKey(url)) });
  if (!connection.token) {
    throw new ApiError(`Not logged in to ${connection.url}. Run "Cronfleet: Log In" (or set cronfleet.token).`, 401);
  }
  return new CronfleetClient({ url: connection.url, token: connection.token });
}

/** Run a command's body; an error becomes a message (with "Log In" when that is the fix). */
function command(body: (...args: any[]) => Promise<unknown>): (...args: any[]) => Promise<void> {
  return async (...args) => {
    try {
      await body(...args);
    } catch (error) {
      if (error instanceof Cancelled) {
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      const unauthorized = error instanceof ApiError && error.status === 401;
      const choice = await vscode.window.showErrorMessage(`Cronfleet: ${message}`, ...(unauthorized ? ["Log In"] : []));
      if (choice === "Log In") {
        await vscode.commands.executeCommand("cronfleet.login");
      }
    }
  };
}

/** The user pressed Escape. */
class Cancelled extends Error {}

function given<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Cancelled();
  }
  return value;
}

/** The job a command acts on: the tree item it was invoked on, else one picked from a list
 * (``arg``, when it is the list already read, or the server's). */
async function pickJob(arg: unknown, title: string): Promise<Job> {
  if (arg instanceof JobItem) {
    return arg.job;
  }
  const jobs = Array.isArray(arg) ? (arg as Job[]) : await (await client()).listJobs();
  if (!jobs.length) {
    throw new Error('You have no scheduled tasks yet: run "Cronfleet: Create Scheduled Task".');
  }
  const picked = await vscode.window.showQuickPick(
    jobs.map((job) => ({
      label: job.name,
      description: `#${job.id} · ${job.enabled ? job.status : "paused"} · last ${job.last_status ?? "never run"}`,
      detail: job.schedule_description,
      job,
    })),
    { title, matchOnDescription: true, matchOnDetail: true },
  );
  return given(picked).job;
}

async function login(): Promise<void> {
  const settings = vscode.workspace.getConfiguration("cronfleet");
  const current = resolveConnection({ settingUrl: settings.get<string>("url") || undefined });
  const url = given(
    await vscode.window.showInputBox({
      title: "Cronfleet: server URL",
      value: current.url,
      validateInput: checkUrl,
      ignoreFocusOut: true,
    }),
  );
  if (unencrypted(url)) {
    const choice = await vscode.window.showWarningMessage(
      `${url} is plain http: your password and token would cross the network unencrypted. Use https:// if the server has it.`,
      { modal: true },
      "Log In Anyway",
    );
    given(choice);
  }
  const username = given(
    await vscode.window.showInputBox({ title: `Cronfleet: username on ${url}`, ignoreFocusOut: true }),
  );
  const password = given(
    await vscode.window.showInputBox({
      title: `Cronfleet: password of ${username}`,
      password: true,
      ignoreFocusOut: true,
    }),
  );
  let token: string;
  try {
    token = await new CronfleetClient({ url }).login(username, password);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) {
      throw new Error(`Wrong username or password for ${url}. Run "Cronfleet: Log In" again.`);
    }
    throw error;
  }
  await secrets.store(secretKey(url), token);
  if (url !== current.url) {
    await settings.update("url", url, vscode.ConfigurationTarget.Global);
  }
  if (settings.get<string>("token")) {
    void vscode.window.showWarningMessage(
      "Cronfleet: the cronfleet.token setting is set and is used before the token just stored: clear it.",
    );
  }
  vscode.window.showInformationMessage(`Cronfleet: logged in to ${url} as ${username}.`);
  tree.refresh();
}

/** The schedule input, checked against the server as it is typed: its description and next runs. */
function askSchedule(api: CronfleetClient, timezone: () => string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const box = vscode.window.createInputBox();
    box.title = "Cronfleet: schedule";
    box.placeholder = 'e.g. "*/5 * * * *", "every 30 seconds", "daily at 10:30", "manual"';
    box.ignoreFocusOut = true;
    let valid = false;
    let timer: NodeJS.Timeout | undefined;
    let asked = 0;
    const check = async (value: string): Promise<void> => {
      const ticket = ++asked;
      valid = false;
      if (!value.trim()) {
        box.validationMessage = undefined;
        box.prompt = "Type a schedule.";
        return;
      }
      box.busy = true;
      try {
        const preview = await api.preview(parseSchedule(value), timezone());
        if (ticket !== asked) return;
        valid = true;
        box.validationMessage = undefined;
        const next = preview.next_runs_local ?? preview.next_runs;
        box.prompt = `${preview.description} — next: ${next.slice(0, 3).join(", ") || "none"}${(preview.warnings ?? []).length ? ` — ${preview.warnings?.join(" ")}` : ""}`;
      } catch (error) {
        if (ticket !== asked) return;
        box.validationMessage =
          error instanceof ApiError ? Object.values(error.fields).flat().join(" ") || error.message : String(error);
      } finally {
        if (ticket === asked) box.busy = false;
      }
    };
    box.onDidChangeValue((value) => {
      clearTimeout(timer);
      timer = setTimeout(() => void check(value), 300);
    });
    box.onDidAccept(async () => {
      clearTimeout(timer);
      if (!valid) {
        await check(box.value); // Enter before the last keystroke was checked
      }
      if (valid) {
        resolve(box.value);
        box.hide();
      }
    });
    box.onDidHide(() => {
      resolve(undefined);
      box.dispose();
    });
    box.show();
  });
}

async function createJob(): Promise<void> {
  const api = await client();
  const name = given(
    await vscode.window.showInputBox({
      title: "Cronfleet: new task's name",
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : "A name is needed."),
    }),
  );
  const kind = given(
    await vscode.window.showQuickPick(
      Object.entries(KINDS).map(([label, spec]) => ({ label, description: spec.prompt })),
      { title: "Cronfleet: kind" },
    ),
  ).label;
  const spec = KINDS[kind];
  const target = given(
    await vscode.window.showInputBox({
      title: `Cronfleet: ${spec.prompt}`,
      placeHolder: spec.placeholder,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : "Needed."),
    }),
  );
  const zones = ["UTC", ...Intl.supportedValuesOf("timeZone").filter((zone) => zone !== "UTC")];
  const timezone = given(
    await vscode.window.showQuickPick(zones, {
      title: "Cronfleet: time zone (cron and calendar times are read in it)",
    }),
  );
  const schedule = given(await askSchedule(api, () => timezone));
  const job = await api.createJob(newJobFields(name, kind, target, schedule, timezone));
  tree.refresh();
  const choice = await vscode.window.showInformationMessage(
    `Cronfleet: created ${job.name} (#${job.id}): ${job.schedule_description}.`,
    "Run Now",
    "Edit",
  );
  if (choice === "Run Now") await runNow(job);
  if (choice === "Edit") await editJob(job);
}

async function listJobs(): Promise<void> {
  const jobs = await (await client()).listJobs();
  output.show(true);
  output.appendLine(`== ${jobs.length} scheduled task${jobs.length === 1 ? "" : "s"}`);
  jobs.forEach((job) => output.appendLine(jobLine(job)));
  const job = await pickJob(jobs, "Cronfleet: scheduled tasks (pick one for its actions)");
  const actions: [string, string][] = [
    ["Run Now", "cronfleet.runNow"],
    [job.enabled ? "Disable" : "Enable", "cronfleet.toggle"],
    ["View History", "cronfleet.viewHistory"],
    ["Edit", "cronfleet.edit"],
  ];
  const picked = given(
    await vscode.window.showQuickPick(
      actions.map(([label]) => label),
      { title: `Cronfleet: ${job.name}` },
    ),
  );
  const commandId = actions.find(([label]) => label === picked)?.[1];
  if (commandId) await vscode.commands.executeCommand(commandId, new JobItem(job));
}

async function editJob(job: Job): Promise<void> {
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(jobUri(job)));
}

/** Enable (true), disable (false) or flip (undefined) the job. */
async function setEnabled(job: Job, enabled = !job.enabled): Promise<void> {
  const fresh = await (await client()).setEnabled(job.id, enabled);
  tree.refresh();
  vscode.window.showInformationMessage(`Cronfleet: ${fresh.name} is ${fresh.enabled ? "enabled" : "paused"}.`);
}

async function runNow(job: Job): Promise<void> {
  const run = await (await client()).runNow(job.id);
  tree.refresh();
  output.show(true);
  output.appendLine(`== ${job.name}: run #${run.id} queued (manual)`);
  await followRun(run.id);
  tree.refresh();
}

/** Print the run's output into the channel as it comes, then its outcome. */
async function followRun(runId: number): Promise<void> {
  const api = await client();
  output.show(true);
  const last = await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `Cronfleet: following run #${runId} (Cancel stops following, not the run)`,
      cancellable: true,
    },
    (_progress, cancel) =>
      api.followLog(runId, (text) => output.append(text), { isCancelled: () => cancel.isCancellationRequested }),
  );
  output.appendLine("");
  if (!last.finished) {
    output.appendLine(`== stopped following run #${runId}; it is still ${last.status}`);
    return;
  }
  const run = await api.getRun(runId);
  output.appendLine(
    `== run #${run.id} ${run.status} · ${formatDuration(run.duration)} · exit ${run.exit_code ?? "-"}${run.error ? ` · ${run.error}` : ""}`,
  );
}

async function viewHistory(job: Job): Promise<void> {
  const runs = await (await client()).history(job.id);
  output.show(true);
  output.appendLine(
    `== ${job.name} (#${job.id}): ${runs.length ? `last ${runs.length} runs, newest first` : "no runs yet"}`,
  );
  runs.forEach((run) => output.appendLine(runLine(run)));
  if (!runs.length) return;
  const picked = await vscode.window.showQuickPick(
    runs.map((run: Run) => ({
      label: `#${run.id} ${run.status}`,
      description: `${formatTime(run.started_at ?? run.scheduled_for)} · ${formatDuration(run.duration)} · exit ${run.exit_code ?? "-"} · ${run.trigger}`,
      run,
    })),
    { title: `Cronfleet: ${job.name}: pick a run for its log` },
  );
  if (picked) {
    output.appendLine(`== log of run #${picked.run.id}`);
    await followRun(picked.run.id);
  }
}

async function saveTask(): Promise<void> {
  const document = vscode.window.activeTextEditor?.document;
  if (!document || document.uri.scheme !== SCHEME) {
    throw new Error('Open a task with "Cronfleet: Edit Scheduled Task" first; this command saves it.');
  }
  await document.save();
}

export function activate(context: vscode.ExtensionContext): void {
  output = vscode.window.createOutputChannel("Cronfleet");
  secrets = context.secrets;
  tree = new JobTreeProvider(client);
  const diagnostics = vscode.languages.createDiagnosticCollection("cronfleet");
  const documents = new JobDocuments(client, diagnostics, () => tree.refresh());
  const onJob = (title: string, body: (job: Job) => Promise<void>) =>
    command(async (arg?: unknown) => body(await pickJob(arg, `Cronfleet: ${title}`)));
  context.subscriptions.push(
    output,
    diagnostics,
    vscode.window.registerTreeDataProvider("cronfleet.jobs", tree),
    vscode.workspace.registerFileSystemProvider(SCHEME, documents, { isCaseSensitive: true }),
    vscode.commands.registerCommand("cronfleet.login", command(login)),
    vscode.commands.registerCommand(
      "cronfleet.logout",
      command(async () => {
        const settings = vscode.workspace.getConfiguration("cronfleet");
        await secrets.delete(
          secretKey(resolveConnection({ settingUrl: settings.get<string>("url") || undefined }).url),
        );
        tree.refresh();
        vscode.window.showInformationMessage("Cronfleet: the stored token is forgotten.");
      }),
    ),
    vscode.commands.registerCommand("cronfleet.create", command(createJob)),
    vscode.commands.registerCommand("cronfleet.list", command(listJobs)),
    vscode.commands.registerCommand("cronfleet.edit", onJob("edit which task?", editJob)),
    vscode.commands.registerCommand(
      "cronfleet.toggle",
      onJob("enable or disable which task?", (job) => setEnabled(job)),
    ),
    vscode.commands.registerCommand(
      "cronfleet.enable",
      onJob("enable which task?", (job) => setEnabled(job, true)),
    ),
    vscode.commands.registerCommand(
      "cronfleet.disable",
      onJob("disable which task?", (job) => setEnabled(job, false)),
    ),
    vscode.commands.registerCommand("cronfleet.runNow", onJob("run which task now?", runNow)),
    vscode.commands.registerCommand("cronfleet.viewHistory", onJob("history of which task?", viewHistory)),
    vscode.commands.registerCommand("cronfleet.save", command(saveTask)),
    vscode.commands.registerCommand("cronfleet.refresh", () => tree.refresh()),
    vscode.workspace.onDidCloseTextDocument((document) => diagnostics.delete(document.uri)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("cronfleet")) tree.refresh();
    }),
  );
}

export function deactivate(): void {}
