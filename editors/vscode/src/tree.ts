/** The "Scheduled Tasks" view: the caller's jobs with their state and last run's status. */

import * as vscode from "vscode";
import type { CronfleetClient, Job } from "./client";
import { formatTime, jobDescription, jobIcon } from "./format";

export class JobItem extends vscode.TreeItem {
  constructor(readonly job: Job) {
    super(job.name, vscode.TreeItemCollapsibleState.None);
    this.id = String(job.id);
    this.description = jobDescription(job);
    this.iconPath = new vscode.ThemeIcon(jobIcon(job));
    // package.json's menus show "Enable" or "Disable" by this value.
    this.contextValue = job.enabled ? "cronfleetJob.enabled" : "cronfleetJob.paused";
    // Plain text: a job's name is anyone's (a teammate's) text, not markdown to render.
    this.tooltip = [
      `${job.name} (#${job.id}, ${job.kind})`,
      `Schedule: ${job.schedule_description ?? JSON.stringify(job.schedule)} (${job.timezone})`,
      `State: ${job.enabled ? job.status : "paused"}`,
      `Last run: ${job.last_status ?? "never"} ${job.last_run_at ? `at ${formatTime(job.last_run_at)}` : ""}`,
      `Next run: ${formatTime(job.next_run_at)}`,
    ].join("\n");
    this.command = { command: "cronfleet.viewHistory", title: "View Task History", arguments: [this] };
  }
}

class MessageItem extends vscode.TreeItem {
  constructor(message: string) {
    super(message, vscode.TreeItemCollapsibleState.None);
    this.iconPath = new vscode.ThemeIcon("warning");
  }
}

export class JobTreeProvider implements vscode.TreeDataProvider<vscode.TreeItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly client: () => Promise<CronfleetClient>) {}

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: vscode.TreeItem): vscode.TreeItem {
    return item;
  }

  async getChildren(parent?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    if (parent) {
      return [];
    }
    try {
      const jobs = await (await this.client()).listJobs();
      return jobs.map((job) => new JobItem(job));
    } catch (error) {
      return [new MessageItem(error instanceof Error ? error.message : String(error))];
    }
  }
}
