// state.ts: what the service remembers across restarts: history and transitions, push times
// and the announcement. Loaded once at start-up from STATE_DIR (when set), saved there at
// least once a minute and at shutdown. It decides nothing about what the state means.

import { PushLog } from './checks/index.ts';
import { History } from './history.ts';
import type { Logger } from './log.ts';
import { StateStore } from './state-store.ts';
import type { Announcement } from './status.ts';

/** How often the state is saved: a `kill -9` loses at most this much (docs/history.md). */
export const SAVE_INTERVAL_MS = 60_000;

const FILES = { history: 'history.json', pushes: 'pushes.json', announcement: 'announcement.json' } as const;
const LEVELS = new Set(['info', 'warning', 'critical']);

export class ServiceState {
  readonly history: History;
  readonly pushes: PushLog;
  announcement: Announcement | null;
  readonly #store: StateStore | null;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;

  private constructor(store: StateStore | null, log: Logger) {
    this.#store = store;
    this.#log = log;
    this.history = store?.load(FILES.history, log, History.fromJSON) ?? new History();
    this.pushes = store?.load(FILES.pushes, log, PushLog.fromJSON) ?? new PushLog();
    this.announcement = store?.load(FILES.announcement, log, announcementFromJSON) ?? null;
  }

  /** In memory only without a directory. Throws an Error naming STATE_DIR when it cannot be used. */
  static open(stateDir: string | null, log: Logger): ServiceState {
    return new ServiceState(stateDir === null ? null : StateStore.open(stateDir), log);
  }

  get persistent(): boolean {
    return this.#store !== null;
  }

  /** Forgets the history and push times of checks that are no longer configured. */
  keepOnly(names: readonly string[]): void {
    const kept = new Set(names);
    for (const name of this.history.names()) if (!kept.has(name)) this.history.forget(name);
    for (const name of Object.keys(this.pushes.toJSON())) if (!kept.has(name)) this.pushes.forget(name);
  }

  /** Saves every SAVE_INTERVAL_MS until stop(). */
  startSaving(intervalMs = SAVE_INTERVAL_MS): void {
    if (this.#store === null || this.#timer !== null) return;
    this.#timer = setInterval(() => void this.save(), intervalMs);
    this.#timer.unref();
  }

  stopSaving(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Writes every file atomically; a failure is logged, and the previous files stay. */
  async save(): Promise<void> {
    const store = this.#store;
    if (store === null) return;
    const startedMs = performance.now();
    try {
      await Promise.all([
        store.save(FILES.history, this.history.jsonPieces()),
        store.save(FILES.pushes, JSON.stringify(this.pushes)),
        store.save(FILES.announcement, JSON.stringify(this.announcement)),
      ]);
      this.#log.debug('state saved', { dir: store.dir, ms: Math.round(performance.now() - startedMs) });
    } catch (err) {
      this.#log.error('saving the state failed', { err: err instanceof Error ? err : String(err) });
    }
  }
}

/** The inverse of JSON.stringify(announcement); throws on anything else. */
export function announcementFromJSON(value: unknown): Announcement | null {
  if (value === null) return null;
  const a = value as Partial<Announcement> | undefined;
  if (
    typeof a !== 'object' ||
    typeof a.text !== 'string' ||
    typeof a.level !== 'string' ||
    !LEVELS.has(a.level) ||
    typeof a.maintenance !== 'boolean' ||
    typeof a.time !== 'string' ||
    Number.isNaN(Date.parse(a.time))
  ) {
    throw new Error('announcement must be null or {text, level, maintenance, time}');
  }
  return { text: a.text, level: a.level, maintenance: a.maintenance, time: a.time };
}
