/**
 * A job as an editable JSON document (cronfleet:/jobs/<id>/<name>.json): reading it GETs
 * the job, saving it PATCHes the fields that changed. A refused save leaves the document
 * dirty, marks the fields the server named as diagnostics, and says why.
 */

import * as vscode from "vscode";
import { ApiError, type CronfleetClient, type Job } from "./client";
import { changedFields, DocumentError, editableDocument, fieldLine } from "./format";

export const SCHEME = "cronfleet";

export function jobUri(job: Job): vscode.Uri {
  const safeName = job.name.replace(/[^\w.-]+/g, "_").slice(0, 60) || "job";
  return vscode.Uri.from({ scheme: SCHEME, path: `/jobs/${job.id}/${safeName}.json` });
}

export function jobIdOf(uri: vscode.Uri): number {
  const match = /^\/jobs\/(\d+)\//.exec(uri.path);
  if (!match) {
    throw vscode.FileSystemError.FileNotFound(uri);
  }
  return Number(match[1]);
}

export class JobDocuments implements vscode.FileSystemProvider {
  private readonly changed = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.changed.event;
  /** The job as last read or saved, what an edit is compared with. */
  private readonly originals = new Map<number, Job>();
  private readonly mtimes = new Map<number, number>();

  constructor(
    private readonly client: () => Promise<CronfleetClient>,
    private readonly diagnostics: vscode.DiagnosticCollection,
    private readonly onSaved: (job: Job) => void,
  ) {}

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => undefined);
  }

  stat(uri: vscode.Uri): vscode.FileStat {
    const id = jobIdOf(uri);
    const mtime = this.mtimes.get(id) ?? Date.now();
    return { type: vscode.FileType.File, ctime: mtime, mtime, size: 0 };
  }

  async readFile(uri: vscode.Uri): Promise<Uint8Array> {
    const id = jobIdOf(uri);
    const job = await this.call(() => this.client().then((client) => client.getJob(id)), uri);
    this.remember(job);
    return new TextEncoder().encode(editableDocument(job));
  }

  async writeFile(uri: vscode.Uri, content: Uint8Array): Promise<void> {
    const id = jobIdOf(uri);
    const text = new TextDecoder().decode(content);
    const original = this.originals.get(id) ?? (await (await this.client()).getJob(id));
    let changes: Record<string, unknown>;
    try {
      changes = changedFields(original, text);
    } catch (error) {
      throw this.refuse(uri, text, error);
    }
    if (!Object.keys(changes).length) {
      this.diagnostics.delete(uri);
      return;
    }
    let saved: Job;
    try {
      saved = await (await this.client()).updateJob(id, changes);
    } catch (error) {
      throw this.refuse(uri, text, error);
    }
    this.diagnostics.delete(uri);
    this.remember(saved);
    this.onSaved(saved);
    // The server may have normalised what was sent ("manual" -> {"type": "manual"}):
    // the saved document is read again, once VS Code has finished saving it.
    setTimeout(() => this.changed.fire([{ type: vscode.FileChangeType.Changed, uri }]), 100);
    vscode.window.setStatusBarMessage(`Cronfleet: saved ${saved.name} (${Object.keys(changes).join(", ")})`, 5000);
  }

  /** Show the field errors on their lines; the error that makes VS Code keep the edit. */
  private refuse(uri: vscode.Uri, text: string, error: unknown): Error {
    const fields = error instanceof ApiError || error instanceof DocumentError ? error.fields : {};
    const lines = text.split("\n");
    this.diagnostics.set(
      uri,
      Object.entries(fields).map(([field, messages]) => {
        const line = fieldLine(text, field);
        const range = new vscode.Range(line, 0, line, lines[line]?.length ?? 0);
        const label = field === "detail" ? "" : `${field}: `;
        const diagnostic = new vscode.Diagnostic(range, label + messages.join(" "), vscode.DiagnosticSeverity.Error);
        diagnostic.source = "cronfleet";
        return diagnostic;
      }),
    );
    const message = error instanceof Error ? error.message : String(error);
    void vscode.window.showErrorMessage(`Cronfleet: not saved. ${message}`);
    return vscode.FileSystemError.NoPermissions(`not saved: ${message}`);
  }

  private async call<T>(action: () => Promise<T>, uri: vscode.Uri): Promise<T> {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        throw vscode.FileSystemError.FileNotFound(uri);
      }
      throw error;
    }
  }

  private remember(job: Job): void {
    this.originals.set(job.id, job);
    this.mtimes.set(job.id, Date.now());
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }

  createDirectory(): void {
    throw vscode.FileSystemError.NoPermissions("jobs are created with Cronfleet: Create Scheduled Task");
  }

  delete(): void {
    throw vscode.FileSystemError.NoPermissions("delete jobs with the schedule CLI or the API");
  }

  rename(): void {
    throw vscode.FileSystemError.NoPermissions("rename a job by editing its name field");
  }
}
