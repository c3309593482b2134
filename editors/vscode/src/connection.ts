/**
 * Where the server is and which token to send: the extension's settings and SecretStorage
 * first, then what the `schedule` CLI uses (SCHEDULE_URL / SCHEDULE_TOKEN, then its config
 * file). No `vscode` import: the extension passes its settings in.
 */

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";

export const DEFAULT_URL = "http://127.0.0.1:8000";

export interface Connection {
  url: string;
  token?: string;
  /** Where the token came from, for messages ("setting", "secret storage", ...). */
  tokenSource?: string;
}

/** The CLI's config file: $XDG_CONFIG_HOME/cronfleet/config.toml, else ~/.config/... */
export function cliConfigPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(home, ".config");
  return join(base, "cronfleet", "config.toml");
}

/** The CLI config's top-level ``url`` and ``token`` (strings); nothing when the file is
 * absent. A file that is not TOML is an error that names it. */
export function readCliConfig(path: string): { url?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  let data: Record<string, unknown>;
  try {
    data = parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${path} is not valid TOML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const nonEmpty = (value: unknown): string | undefined => (typeof value === "string" && value ? value : undefined);
  return { url: nonEmpty(data.url), token: nonEmpty(data.token) };
}

export interface ConnectionSources {
  settingUrl?: string;
  settingToken?: string;
  secretToken?: string;
  env?: NodeJS.ProcessEnv;
  configPath?: string;
}

/** The first URL and token found, in this order: setting, secret storage (token only),
 * SCHEDULE_URL/SCHEDULE_TOKEN, the CLI's config file; the URL defaults to DEFAULT_URL.
 * ``secretToken`` must be the one stored for that URL (see secretKey). */
export function resolveConnection(sources: ConnectionSources): Connection {
  const env = sources.env ?? process.env;
  const file = readCliConfig(sources.configPath ?? cliConfigPath(env));
  const url = sources.settingUrl || env.SCHEDULE_URL || file.url || DEFAULT_URL;
  // The file's token belongs to the file's server: never sent to another one.
  const fileToken = !file.url || sameServer(file.url, url) ? file.token : undefined;
  const candidates: [string | undefined, string][] = [
    [sources.settingToken, "the cronfleet.token setting"],
    [sources.secretToken, "VS Code's secret storage"],
    [env.SCHEDULE_TOKEN, "SCHEDULE_TOKEN"],
    [fileToken, sources.configPath ?? cliConfigPath(env)],
  ];
  const found = candidates.find(([token]) => token);
  return { url, token: found?.[0], tokenSource: found?.[1] };
}

/** Whether two server URLs are the same (ignoring a trailing slash). */
export function sameServer(a: string, b: string): boolean {
  return a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
}

/** The secret storage key of the token for a server: a token goes only to where it came from. */
export function secretKey(url: string): string {
  return `cronfleet.token@${url.replace(/\/+$/, "")}`;
}

/** A URL the extension may call: http or https, with a host. */
export function checkUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return "The URL must start with http:// or https://.";
    }
    return undefined;
  } catch {
    return "Not a URL: write it like http://127.0.0.1:8000.";
  }
}

/** Whether a password sent to this URL would cross the network unencrypted: plain http
 * to anything but this machine. */
export function unencrypted(url: string): boolean {
  try {
    const parsed = new URL(url);
    const loopback =
      ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname) || parsed.hostname.startsWith("127.");
    return parsed.protocol === "http:" && !loopback;
  } catch {
    return false;
  }
}
