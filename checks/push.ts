// checks/push.ts: push checks (a dead man's switch): the log of the last push per check and
// the rule that turns it into an outcome. Makes no request; the clock is a parameter.

import { humanDuration } from './conditions.ts';
import { type Bad, type Entry, integerField } from './fields.ts';
import type { CheckCommon, Outcome, PushCheck } from './index.ts';

export const PUSH_FIELDS = ['withinMs'] as const;
/** A push's msg is at most this long (the write API refuses longer ones). */
export const MAX_PUSH_MSG_CHARS = 200;

export interface Push {
  readonly status: 'up' | 'down';
  readonly msg: string | null;
}

export interface RecordedPush extends Push {
  /** Date.now() when it was received. */
  readonly atMs: number;
}

/** The last push of each push check, by check name. Serializable for STATE_DIR. */
export class PushLog {
  readonly #last = new Map<string, RecordedPush>();

  /** Records a push; a msg longer than MAX_PUSH_MSG_CHARS is cut, so that the log always reloads. */
  record(check: string, push: Push, atMs: number): void {
    const msg = push.msg === null || push.msg === undefined ? null : push.msg.slice(0, MAX_PUSH_MSG_CHARS);
    this.#last.set(check, Object.freeze({ status: push.status, msg, atMs }));
  }

  last(check: string): RecordedPush | undefined {
    return this.#last.get(check);
  }

  /** A check removed by a reload. */
  forget(check: string): void {
    this.#last.delete(check);
  }

  get size(): number {
    return this.#last.size;
  }

  /** {"<check>": {"status": "up", "msg": null, "atMs": 1764000000000}, …} */
  toJSON(): Record<string, RecordedPush> {
    return Object.fromEntries(this.#last);
  }

  /** The inverse of toJSON(); throws an Error naming the first bad entry. */
  static fromJSON(value: unknown): PushLog {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error('push log: expected an object of check name to push');
    }
    const log = new PushLog();
    for (const [check, push] of Object.entries(value as Record<string, unknown>)) {
      const p = push as Partial<Record<keyof RecordedPush, unknown>> | null;
      const valid =
        typeof p === 'object' &&
        p !== null &&
        (p.status === 'up' || p.status === 'down') &&
        (p.msg === null || (typeof p.msg === 'string' && p.msg.length <= MAX_PUSH_MSG_CHARS)) &&
        typeof p.atMs === 'number' &&
        Number.isFinite(p.atMs);
      if (!valid) throw new Error(`push log: bad entry for ${JSON.stringify(check)}`);
      log.record(check, { status: p.status as Push['status'], msg: p.msg as string | null }, p.atMs as number);
    }
    return log;
  }
}

// withinMs is compared, never a timer: a monthly job needs more than setTimeout's 24.8 days.
const MAX_WITHIN_MS = 366 * 24 * 3600 * 1000;

/**
 * A push check: its URL is push:// and nothing else (the name says which check a push is
 * for), and withinMs is required.
 */
export function pushDefinition(
  common: Omit<CheckCommon, 'kind' | 'target'>,
  url: URL,
  entry: Entry,
  bad: Bad,
): PushCheck {
  if (url.href !== 'push://') bad('url', url.href, 'push:// with nothing after it');
  const accepted = `an integer from 1 to ${MAX_WITHIN_MS} (a year)`;
  if (entry.withinMs === undefined) bad('withinMs', undefined, accepted);
  const withinMs = integerField(entry, 'withinMs', 0, 1, MAX_WITHIN_MS, (field, given) => bad(field, given, accepted));
  return Object.freeze({ ...common, kind: 'push', target: 'push://', degradedMs: null, withinMs });
}

/**
 * Up while the last push said up and is younger than withinMs; down when it said down
 * (reason: its msg) or is older (`no push for 26h`). With no push yet, up until withinMs
 * after start-up.
 */
export function pushOutcome(
  def: PushCheck,
  last: RecordedPush | undefined,
  startedAtMs: number,
  nowMs: number,
): Outcome {
  if (last === undefined) {
    const waitedMs = nowMs - startedAtMs;
    if (waitedMs < def.withinMs) return { state: 'up', detail: 'no push yet', reason: null, latencyMs: 0 };
    return { state: 'down', detail: 'no push yet', reason: `no push for ${humanDuration(waitedMs)}`, latencyMs: 0 };
  }
  // A clock that went back makes a push look younger, never older.
  const ageMs = Math.max(0, nowMs - last.atMs);
  const detail = `pushed ${last.status} ${humanDuration(ageMs)} ago`;
  if (last.status === 'down')
    return { state: 'down', detail, reason: last.msg ?? 'the last push said down', latencyMs: 0 };
  if (ageMs >= def.withinMs)
    return { state: 'down', detail, reason: `no push for ${humanDuration(ageMs)}`, latencyMs: 0 };
  return { state: 'up', detail, reason: null, latencyMs: 0 };
}
