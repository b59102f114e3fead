// config-file.ts: CONFIG_FILE, the JSON file of checks (with their options) and alerts,
// read beside the CHECKS variable; and the watch that reloads it when it changes.
// It validates and reports; it never applies a configuration itself (server.ts does).

import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { type AlertTarget, parseAlertTargets } from './alerts.ts';
import { type CheckDefinition, parseCheckDefinitions } from './checks/index.ts';
import type { Config } from './config.ts';

/** What can change without a restart: the checks (CHECKS and the file's) and the alerts. */
export interface MonitorConfig {
  readonly checks: readonly CheckDefinition[];
  readonly alerts: readonly AlertTarget[];
  /** sha256 of the file's bytes; '' without a file. A reload of the same bytes changes nothing. */
  readonly digest: string;
}

const TOP_LEVEL_FIELDS = new Set(['checks', 'alerts']);

/** Reads CONFIG_FILE (if any) and joins its checks to CHECKS'. `problems` lists everything wrong. */
export function loadMonitorConfig(config: Config): { monitor: MonitorConfig; problems: string[] } {
  const path = config.configFile;
  if (path === null) return { monitor: { checks: config.checks, alerts: [], digest: '' }, problems: [] };
  const fail = (problem: string): { monitor: MonitorConfig; problems: string[] } => ({
    monitor: { checks: config.checks, alerts: [], digest: '' },
    problems: [`config: CONFIG_FILE ${path}: ${problem}`],
  });
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    return fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return fail(`is not valid JSON (${syntaxError(err as Error)})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return fail('must be a JSON object like {"checks": [...], "alerts": [...]}');
  }
  const problems: string[] = [];
  for (const key of Object.keys(document)) {
    if (!TOP_LEVEL_FIELDS.has(key))
      problems.push(`config: ${path}: unknown field ${JSON.stringify(key)} (accepted: checks, alerts)`);
  }
  const fields = document as { checks?: unknown; alerts?: unknown };
  const taken = new Set(config.checks.map((c) => c.name));
  const defaults = { timeoutMs: config.checkTimeoutMs, intervalMs: config.intervalMs };
  const parsed = parseCheckDefinitions(fields.checks, path, defaults, taken);
  problems.push(...parsed.problems);
  const checks = [...config.checks, ...parsed.checks];
  const alerts = parseAlertTargets(fields.alerts, path, new Set(checks.map((c) => c.name)));
  problems.push(...alerts.problems);
  const digest = createHash('sha256').update(bytes).digest('hex');
  return { monitor: { checks, alerts: alerts.targets, digest }, problems };
}

// V8 quotes up to 10 characters of the text on each side of a syntax error (`Unexpected token 'd',
// ..."zYq","on":down}]}" is not valid JSON`): that may be the tail of a webhook URL, which is
// never shown past its host (docs/alerts.md). The quote is cut; the rest of the message stays.
function syntaxError(err: Error): string {
  return err.message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
}

// Editors and Kubernetes replace a file rather than write it in place (a ConfigMap swaps the
// symlink `..data` in the file's directory), so the directory is watched, not the file, and
// events are gathered for a moment before the file is read again.
const SETTLE_MS = 200;

/** Calls `onChange` (debounced) when anything in the file's directory changes. Returns a stop function. */
export function watchConfigFile(path: string, onChange: () => void, onError: (err: Error) => void): () => void {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher;
  const name = basename(path);
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      // A ConfigMap changes `..data`, not the file's own name; anything else is someone else's.
      if (file !== null && file !== name && !String(file).startsWith('..')) return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        onChange();
      }, SETTLE_MS);
    });
  } catch (err) {
    onError(err as Error);
    return () => {};
  }
  watcher.on('error', onError);
  return () => {
    if (timer !== null) clearTimeout(timer);
    watcher.close();
  };
}
