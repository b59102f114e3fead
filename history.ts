// history.ts: what each check did, kept in memory of a fixed size whatever the interval: buckets of
// 1 minute for 1 h, 5 minutes for 24 h, 1 hour for 30 days and 4 hours for 90 days (TIERS), the latest
// 60 results, and the last 1000 transitions.
// It never reads the clock (every time is given) and never touches the file system (state-store.ts does).
//
// What is kept, the uptime rule, the /history answer and the state file: docs/history.md.

import type { CheckState, Transition } from './status.ts';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** The ranges GET /history answers, in ms. */
export const RANGES = {
  '1h': HOUR_MS,
  '24h': DAY_MS,
  '7d': 7 * DAY_MS,
  '30d': 30 * DAY_MS,
  '90d': 90 * DAY_MS,
} as const;
export type RangeName = keyof typeof RANGES;

/** What one ring of buckets keeps: buckets of `ms`, the newest `size` of them. */
export interface Tier {
  readonly key: 'minutes' | 'fiveMinutes' | 'hours' | 'fourHours';
  readonly ms: number;
  readonly size: number;
  /** The uptime windows it answers, in buckets. */
  readonly spans: readonly number[];
}

/**
 * The rings each check keeps, finest first. A range is answered by the finest ring that spans it
 * (1h: minutes; 24h: 5 minutes; 7d and 30d: hours; 90d: 4 hours), always in at least 60 buckets; each
 * ring spans only what its ranges need: 26 KiB a check instead of 58 with 24 h of minutes and 90 days
 * of hours (docs/history.md, "What is kept").
 */
export const TIERS: readonly Tier[] = [
  { key: 'minutes', ms: MINUTE_MS, size: 60, spans: [] },
  { key: 'fiveMinutes', ms: 5 * MINUTE_MS, size: 288, spans: [288] },
  { key: 'hours', ms: HOUR_MS, size: 720, spans: [7 * 24, 30 * 24] },
  { key: 'fourHours', ms: 4 * HOUR_MS, size: 540, spans: [] },
];
const DAY_TIER = 1;
const WEEK_MONTH_TIER = 2;
/** Versions 1 and 2 kept 24 h of minutes and 90 days of hours; fromJSON folds them into TIERS. */
const LEGACY_MINUTES = 1440;
const LEGACY_HOURS = 2160;
/** Raw results kept per check. */
export const RECENT_RESULTS = 60;
export const MAX_TRANSITIONS = 1000;
/** The most slices one /history answer has per check. */
export const MAX_QUERY_BUCKETS = 500;
export const DEFAULT_RANGE: RangeName = '24h';
export const DEFAULT_QUERY_BUCKETS = 90;
/** The state file's format; fromJSON also reads versions 1 and 2 and refuses any other. */
export const HISTORY_VERSION = 3;

const STATES: readonly CheckState[] = ['up', 'degraded', 'down'];
const STATE_CODE: Readonly<Record<CheckState, number>> = { up: 0, degraded: 1, down: 2 };

export interface Uptime {
  readonly '24h': number | null;
  readonly '7d': number | null;
  readonly '30d': number | null;
}

export interface RecentResult {
  /** ISO 8601. */
  readonly time: string;
  readonly state: CheckState;
  readonly latencyMs: number | null;
}

export interface HistoryQuery {
  readonly range: RangeName;
  /** Slices of the range, 1 to MAX_QUERY_BUCKETS. */
  readonly buckets: number;
  /** Checks to answer, in this order; a check without data answers empty slices. */
  readonly checks: readonly string[];
  /** Include the overall status's transitions (check: null); default true. */
  readonly overall?: boolean;
}

export interface LatencySummary {
  readonly min: number | null;
  readonly avg: number | null;
  readonly max: number | null;
}

export interface HistoryBucket {
  /** ISO 8601: the slice's first millisecond. */
  readonly start: string;
  readonly up: number;
  readonly degraded: number;
  readonly down: number;
  readonly latencyMs: LatencySummary;
}

export interface CheckHistoryAnswer {
  readonly name: string;
  readonly uptime: number | null;
  readonly buckets: readonly HistoryBucket[];
}

/** The body of GET /history. */
export interface HistoryAnswer {
  readonly range: RangeName;
  readonly buckets: number;
  readonly from: string;
  readonly to: string;
  readonly checks: readonly CheckHistoryAnswer[];
  readonly transitions: readonly Transition[];
}

export type HistoryQueryResult =
  | { readonly ok: true; readonly query: HistoryQuery }
  | { readonly ok: false; readonly status: 400 | 404; readonly error: string };

/**
 * Reads GET /history's query string: `range` (default 24h), `buckets` (default 90) and any number of
 * `check` (default every known check, in their order). A bad range or buckets, or one given twice, is
 * 400; an unknown check is 404. Other parameters (a token) are ignored.
 */
export function parseHistoryQuery(params: URLSearchParams, knownChecks: Iterable<string>): HistoryQueryResult {
  const ranges = params.getAll('range');
  const counts = params.getAll('buckets');
  if (ranges.length > 1) return bad(`history: range given ${ranges.length} times, give it once`);
  if (counts.length > 1) return bad(`history: buckets given ${counts.length} times, give it once`);
  const range = ranges.length === 0 ? DEFAULT_RANGE : ranges[0];
  if (!Object.hasOwn(RANGES, range)) {
    return bad(`history: range must be one of ${Object.keys(RANGES).join(', ')}, got ${JSON.stringify(range)}`);
  }
  let buckets = DEFAULT_QUERY_BUCKETS;
  if (counts.length === 1) {
    buckets = /^[0-9]{1,3}$/.test(counts[0]) ? Number(counts[0]) : 0;
    if (buckets < 1 || buckets > MAX_QUERY_BUCKETS) {
      return bad(`history: buckets must be an integer 1-${MAX_QUERY_BUCKETS}, got ${JSON.stringify(counts[0])}`);
    }
  }
  const known = [...knownChecks];
  const asked = params.getAll('check');
  let checks = known;
  if (asked.length > 0) {
    const knownSet = new Set(known);
    const unknown = asked.find((name) => !knownSet.has(name));
    if (unknown !== undefined) {
      return { ok: false, status: 404, error: `history: no check named ${JSON.stringify(unknown)}` };
    }
    checks = [...new Set(asked)];
  }
  return { ok: true, query: { range: range as RangeName, buckets, checks, overall: asked.length === 0 } };
}

function bad(error: string): HistoryQueryResult {
  return { ok: false, status: 400, error };
}

/** Running tally of a window: runs, and runs whose state was not down. */
interface Tally {
  runs: number;
  ok: number;
}

// A bucket is 8 Uint16, 16 bytes (docs/history.md, "What is kept"): the runs per state (at the state's code),
// the low 16 bits of the minimum and the maximum latency, their high 8 bits (the minimum's in the low byte),
// and the latency sum's low and high 16 bits. Latencies are integer tenths of a ms.
const MIN_LOW = 3;
const MAX_LOW = 4;
const MIN_MAX_HIGH = 5;
const SUM_LOW = 6;
const SUM_HIGH = 7;
const PER_BUCKET = 8;
/** Runs of one state a bucket counts: 36,000 an hour at the 100 ms shortest interval fit. */
const MAX_RUNS = 0xffff;
/** The longest latency kept, in tenths of a ms (24 bits: 27 min 57.7 s); a longer one counts as this. */
export const MAX_LATENCY_TENTHS = 0xffffff;
// A check's runs never overlap, so the runs of a bucket take at most the bucket and one run: far below this.
const MAX_SUM_TENTHS = 0xffffffff;
/** A recent result without a latency. */
const NO_LATENCY = 0xffffffff;
/** Room for one column of the longest ring while it is written out. */
const COLUMN_SCRATCH = new Uint32Array(Math.max(LEGACY_HOURS, ...TIERS.map((t) => t.size)));

interface ViewType<T> {
  new (buffer: ArrayBuffer, offset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Typed arrays carved out of one ArrayBuffer, one after the other: a check's columns cost one
 * allocation, not one each. A view must start at a multiple of its element size (or it throws).
 */
class Arena {
  readonly buffer: ArrayBuffer;
  #offset = 0;

  constructor(bytes: number) {
    this.buffer = new ArrayBuffer(bytes);
  }

  take<T>(Type: ViewType<T>, length: number): T {
    const view = new Type(this.buffer, this.#offset, length);
    this.#offset += length * Type.BYTES_PER_ELEMENT;
    return view;
  }
}

/** The columns of a ring as numbers, oldest bucket first: what the state file holds. */
interface Columns {
  up: number[];
  degraded: number[];
  down: number[];
  minTenths: number[];
  maxTenths: number[];
  sumTenths: number[];
  /** Runs without a latency (version 2, only when there are any); version 1 has `count`, runs with one. */
  noLatency: number[] | null;
}

/**
 * A ring of `size` buckets of one minute or one hour, keyed by bucket index (floor(time / bucket length)).
 * It holds the indices (head - size, head]; a write past head clears the buckets it skips, and a
 * write before head (the clock stepped back) clears the buckets newer than it, so the ring is always
 * one contiguous stretch of the past and nothing from a wrong clock is merged into later buckets.
 */
class Ring {
  readonly size: number;
  head = -1;
  /** PER_BUCKET values a bucket. Integers, so sums stay exact: an average is the same after a save. */
  readonly buckets: Uint16Array;
  /** Runs that reported no latency, per bucket; made on the first such run (the poller's runs all have one). */
  noLatency: Uint16Array | null = null;
  // Uptime over the buckets before `cacheAt` (windows of `spans` buckets ending at cacheAt): computed
  // once per bucket, so uptime() per snapshot reads one live bucket. Any write not at cacheAt drops it.
  readonly spans: readonly number[];
  cacheAt = -1;
  readonly cacheRuns: number[];
  readonly cacheOk: number[];

  constructor(size: number, spans: readonly number[], arena: Arena) {
    this.size = size;
    this.buckets = arena.take(Uint16Array, size * PER_BUCKET);
    this.spans = spans;
    this.cacheRuns = spans.map(() => 0);
    this.cacheOk = spans.map(() => 0);
  }

  holds(index: number): boolean {
    return index >= 0 && index <= this.head && index > this.head - this.size;
  }

  runs(slot: number): number {
    const at = slot * PER_BUCKET;
    return this.buckets[at] + this.buckets[at + 1] + this.buckets[at + 2];
  }

  /** Runs of the bucket that reported a latency. */
  measured(slot: number): number {
    return this.runs(slot) - (this.noLatency === null ? 0 : this.noLatency[slot]);
  }

  min(slot: number): number {
    const at = slot * PER_BUCKET;
    return this.buckets[at + MIN_LOW] + (this.buckets[at + MIN_MAX_HIGH] & 0xff) * 0x10000;
  }

  max(slot: number): number {
    const at = slot * PER_BUCKET;
    return this.buckets[at + MAX_LOW] + (this.buckets[at + MIN_MAX_HIGH] >>> 8) * 0x10000;
  }

  sum(slot: number): number {
    const at = slot * PER_BUCKET;
    return this.buckets[at + SUM_LOW] + this.buckets[at + SUM_HIGH] * 0x10000;
  }

  setMin(slot: number, tenths: number): void {
    const at = slot * PER_BUCKET;
    this.buckets[at + MIN_LOW] = tenths & 0xffff;
    this.buckets[at + MIN_MAX_HIGH] = (this.buckets[at + MIN_MAX_HIGH] & 0xff00) | (tenths >>> 16);
  }

  setMax(slot: number, tenths: number): void {
    const at = slot * PER_BUCKET;
    this.buckets[at + MAX_LOW] = tenths & 0xffff;
    this.buckets[at + MIN_MAX_HIGH] = (this.buckets[at + MIN_MAX_HIGH] & 0xff) | ((tenths >>> 16) << 8);
  }

  setSum(slot: number, tenths: number): void {
    const at = slot * PER_BUCKET;
    this.buckets[at + SUM_LOW] = tenths % 0x10000;
    this.buckets[at + SUM_HIGH] = Math.floor(tenths / 0x10000);
  }

  /** The slot of bucket `index`, moving the head to it when it is not the head (see the class). */
  private slotFor(index: number): number {
    if (index !== this.cacheAt) this.cacheAt = -1;
    if (index > this.head) {
      this.clear(Math.max(this.head + 1, index - this.size + 1), index);
      this.head = index;
    } else if (index < this.head) {
      this.clear(Math.max(index + 1, this.head - this.size + 1), this.head);
      this.head = index;
    }
    return index % this.size;
  }

  /** Counts a run; `tenths` is at most MAX_LATENCY_TENTHS. A run beyond MAX_RUNS of its kind is not counted. */
  add(index: number, state: number, tenths: number | null): void {
    const slot = this.slotFor(index);
    const at = slot * PER_BUCKET + state;
    // Saturated rather than wrapped: only a flood of runs faster than the shortest interval gets here.
    if (this.buckets[at] === MAX_RUNS) return;
    if (tenths === null) {
      this.noLatency ??= new Uint16Array(this.size);
      if (this.noLatency[slot] === MAX_RUNS) return;
      this.noLatency[slot]++;
      this.buckets[at]++;
      return;
    }
    if (this.measured(slot) === 0) {
      this.setMin(slot, tenths);
      this.setMax(slot, tenths);
    } else {
      if (tenths < this.min(slot)) this.setMin(slot, tenths);
      if (tenths > this.max(slot)) this.setMax(slot, tenths);
    }
    this.buckets[at]++;
    this.setSum(slot, Math.min(this.sum(slot) + tenths, MAX_SUM_TENTHS));
  }

  /**
   * Adds every held bucket of `source`, oldest first, to this ring's bucket that holds its start:
   * `factor` of the source's buckets make one of this ring's. Counts saturate at MAX_RUNS.
   */
  mergeFrom(source: Ring, factor: number): void {
    for (let index = Math.max(0, source.head - source.size + 1); index <= source.head; index++) {
      const from = index % source.size;
      const runs = source.runs(from);
      if (runs === 0) continue;
      const slot = this.slotFor(Math.floor(index / factor));
      const measured = source.measured(from);
      if (measured > 0) {
        if (this.measured(slot) === 0) {
          this.setMin(slot, source.min(from));
          this.setMax(slot, source.max(from));
        } else {
          this.setMin(slot, Math.min(this.min(slot), source.min(from)));
          this.setMax(slot, Math.max(this.max(slot), source.max(from)));
        }
        this.setSum(slot, Math.min(this.sum(slot) + source.sum(from), MAX_SUM_TENTHS));
      }
      if (runs > measured) {
        this.noLatency ??= new Uint16Array(this.size);
        this.noLatency[slot] = Math.min(this.noLatency[slot] + runs - measured, MAX_RUNS);
      }
      for (let state = 0; state < 3; state++) {
        const at = slot * PER_BUCKET + state;
        this.buckets[at] = Math.min(this.buckets[at] + source.buckets[from * PER_BUCKET + state], MAX_RUNS);
      }
      if (this.noLatency !== null) this.noLatency[slot] = Math.min(this.noLatency[slot], this.runs(slot));
    }
  }

  /** Empties the buckets of indices first..last (at most one lap of the ring). */
  private clear(first: number, last: number): void {
    for (let index = first; index <= last; index++) {
      const slot = index % this.size;
      this.buckets.fill(0, slot * PER_BUCKET, (slot + 1) * PER_BUCKET);
      if (this.noLatency !== null) this.noLatency[slot] = 0;
    }
  }

  /** Adds the runs of the held buckets with indices first..last to `tally`. */
  private tally(first: number, last: number, tally: Tally): void {
    const from = Math.max(first, this.head - this.size + 1, 0);
    const to = Math.min(last, this.head);
    const buckets = this.buckets;
    let runs = 0;
    let ok = 0;
    for (let index = from; index <= to; index++) {
      const at = (index % this.size) * PER_BUCKET;
      const good = buckets[at] + buckets[at + 1];
      ok += good;
      runs += good + buckets[at + 2];
    }
    tally.runs += runs;
    tally.ok += ok;
  }

  /** Uptime percentages for windows of `spans` buckets (ascending) ending with bucket `current`. */
  uptime(current: number, out: (number | null)[]): void {
    if (this.cacheAt !== current) {
      // Each window is the one before it plus older buckets; the current bucket is read live below.
      const tally = { runs: 0, ok: 0 };
      let newest = current - 1;
      for (let i = 0; i < this.spans.length; i++) {
        this.tally(current - this.spans[i] + 1, newest, tally);
        this.cacheRuns[i] = tally.runs;
        this.cacheOk[i] = tally.ok;
        newest = current - this.spans[i];
      }
      this.cacheAt = current;
    }
    let liveRuns = 0;
    let liveOk = 0;
    if (this.holds(current)) {
      const at = (current % this.size) * PER_BUCKET;
      liveOk = this.buckets[at] + this.buckets[at + 1];
      liveRuns = liveOk + this.buckets[at + 2];
    }
    for (let i = 0; i < this.spans.length; i++) {
      out[i] = percent(this.cacheOk[i] + liveOk, this.cacheRuns[i] + liveRuns);
    }
  }

  /** Adds the held buckets among indices first..first+n-1 to `slices`: the k-th to slice floor(k * count / n). */
  accumulate(first: number, n: number, slices: Slices): void {
    const count = slices.up.length;
    const buckets = this.buckets;
    const kFrom = Math.max(0, this.head - this.size + 1 - first, -first);
    const kTo = Math.min(n - 1, this.head - first);
    for (let k = kFrom; k <= kTo; k++) {
      const slot = (first + k) % this.size;
      const at = slot * PER_BUCKET;
      const s = Math.floor((k * count) / n);
      const up = buckets[at];
      const degraded = buckets[at + 1];
      const down = buckets[at + 2];
      slices.up[s] += up;
      slices.degraded[s] += degraded;
      slices.down[s] += down;
      slices.ok += up + degraded;
      slices.runs += up + degraded + down;
      const measured = this.measured(slot);
      if (measured > 0) {
        const min = this.min(slot);
        const max = this.max(slot);
        if (min < slices.minTenths[s]) slices.minTenths[s] = min;
        if (max > slices.maxTenths[s]) slices.maxTenths[s] = max;
        slices.sumTenths[s] += this.sum(slot);
        slices.count[s] += measured;
      }
    }
  }

  /** The JSON object of the state file: `end` (head) and one array per column, oldest bucket first. */
  toJSON(): string {
    const first = (this.head + 1) % this.size;
    // Each column is copied into one scratch array and joined, so a save makes strings and no arrays.
    const column = (value: (slot: number) => number): string => {
      for (let k = 0; k < this.size; k++) COLUMN_SCRATCH[k] = value((first + k) % this.size);
      return `[${COLUMN_SCRATCH.subarray(0, this.size).join(',')}]`;
    };
    const buckets = this.buckets;
    const noLatency = this.noLatency;
    // Left out once no held bucket has such a run, as load() leaves the column unmade then.
    const withoutLatency = noLatency?.some((n) => n > 0) === true;
    return (
      `{"end":${this.head},"up":${column((slot) => buckets[slot * PER_BUCKET])},` +
      `"degraded":${column((slot) => buckets[slot * PER_BUCKET + 1])},` +
      `"down":${column((slot) => buckets[slot * PER_BUCKET + 2])},` +
      `"minTenths":${column((slot) => this.min(slot))},"maxTenths":${column((slot) => this.max(slot))},` +
      `"sumTenths":${column((slot) => this.sum(slot))}` +
      `${withoutLatency ? `,"noLatency":${column((slot) => noLatency[slot])}` : ''}}`
    );
  }

  /**
   * The inverse of toJSON(), or a version 1 ring (Uint32 counts, a `count` of runs with a latency):
   * its values are clamped to what version 2 holds, which no real bucket exceeds. Throws on anything
   * malformed, naming `where`.
   */
  load(value: unknown, where: string, version: number): void {
    const o = record(value, where);
    const end = o.end;
    if (!Number.isSafeInteger(end) || (end as number) < -1) {
      fail(`${where}.end must be an integer >= -1, got ${show(end)}`);
    }
    const runLimit = version === 1 ? 0xffffffff : MAX_RUNS;
    const latencyLimit = version === 1 ? 0xffffffff : MAX_LATENCY_TENTHS;
    const column = (name: string, limit: number): number[] => {
      const items = o[name];
      if (!Array.isArray(items) || items.length !== this.size) {
        fail(`${where}.${name} must be an array of ${this.size} integers, got ${describe(items)}`);
      }
      for (let k = 0; k < this.size; k++) {
        const v = items[k] as number;
        if (!(Number.isInteger(v) && v >= 0 && v <= limit)) {
          fail(`${where}.${name}[${k}] must be an integer 0-${limit}, got ${show(v)}`);
        }
      }
      return items as number[];
    };
    const c: Columns = {
      up: column('up', runLimit),
      degraded: column('degraded', runLimit),
      down: column('down', runLimit),
      minTenths: column('minTenths', latencyLimit),
      maxTenths: column('maxTenths', latencyLimit),
      sumTenths: column('sumTenths', version === 1 ? Number.MAX_SAFE_INTEGER : MAX_SUM_TENTHS),
      noLatency: null,
    };
    if (version === 1) {
      const count = column('count', runLimit);
      c.noLatency = count.map((measured, k) => {
        const unmeasured = c.up[k] + c.degraded[k] + c.down[k] - measured;
        if (unmeasured < 0) fail(`${where}.count has more latencies than runs in a bucket`);
        return unmeasured;
      });
    } else if (o.noLatency !== undefined) {
      c.noLatency = column('noLatency', MAX_RUNS);
      c.noLatency.forEach((unmeasured, k) => {
        if (unmeasured > c.up[k] + c.degraded[k] + c.down[k]) {
          fail(`${where}.noLatency has more runs without a latency than runs in a bucket`);
        }
      });
    }
    this.head = end as number;
    const first = (this.head + 1) % this.size;
    for (let k = 0; k < this.size; k++) {
      const slot = (first + k) % this.size;
      const at = slot * PER_BUCKET;
      this.buckets[at] = Math.min(c.up[k], MAX_RUNS);
      this.buckets[at + 1] = Math.min(c.degraded[k], MAX_RUNS);
      this.buckets[at + 2] = Math.min(c.down[k], MAX_RUNS);
      this.setMin(slot, Math.min(c.minTenths[k], MAX_LATENCY_TENTHS));
      this.setMax(slot, Math.min(c.maxTenths[k], MAX_LATENCY_TENTHS));
      this.setSum(slot, Math.min(c.sumTenths[k], MAX_SUM_TENTHS));
    }
    const unmeasured = c.noLatency?.some((n) => n > 0) ? c.noLatency : null;
    if (unmeasured !== null) {
      const column = new Uint16Array(this.size);
      for (let k = 0; k < this.size; k++) {
        const slot = (first + k) % this.size;
        column[slot] = Math.min(unmeasured[k], MAX_RUNS, this.runs(slot));
      }
      this.noLatency = column;
    }
  }
}

/** One check's slices of a /history range, summed from its buckets. */
class Slices {
  readonly up: Float64Array;
  readonly degraded: Float64Array;
  readonly down: Float64Array;
  readonly minTenths: Float64Array;
  readonly maxTenths: Float64Array;
  readonly sumTenths: Float64Array;
  /** Runs that reported a latency. */
  readonly count: Float64Array;
  runs = 0;
  ok = 0;

  constructor(count: number) {
    this.up = new Float64Array(count);
    this.degraded = new Float64Array(count);
    this.down = new Float64Array(count);
    this.minTenths = new Float64Array(count);
    this.maxTenths = new Float64Array(count);
    this.sumTenths = new Float64Array(count);
    this.count = new Float64Array(count);
  }

  reset(): void {
    for (const column of [this.up, this.degraded, this.down, this.sumTenths, this.count]) column.fill(0);
    this.minTenths.fill(Infinity);
    this.maxTenths.fill(-Infinity);
    this.runs = 0;
    this.ok = 0;
  }
}

function percent(ok: number, runs: number): number | null {
  // Floored, so that 100 means no run was down (99.996 % shows 99.99, not 100).
  return runs === 0 ? null : Math.floor((ok * 10_000) / runs) / 100;
}

/** Bytes of a check's buffer: the latest results (Float64 time, Uint32 latency, Uint8 state) and the rings. */
const CHECK_BYTES = RECENT_RESULTS * (8 + 4 + 1) + TIERS.reduce((bytes, tier) => bytes + tier.size * PER_BUCKET * 2, 0);

/** One check's buckets and latest results, in one buffer of CHECK_BYTES. */
class CheckHistory {
  readonly recentAtMs: Float64Array;
  /** Tenths of a ms, NO_LATENCY for a run without one. */
  readonly recentTenths: Uint32Array;
  readonly recentState: Uint8Array;
  /** One ring per TIERS entry, in that order. */
  readonly rings: readonly Ring[];
  recentCount = 0;
  recentNext = 0;

  constructor() {
    // Widest first, so that every view is aligned.
    const arena = new Arena(CHECK_BYTES);
    this.recentAtMs = arena.take(Float64Array, RECENT_RESULTS);
    this.recentTenths = arena.take(Uint32Array, RECENT_RESULTS);
    this.rings = TIERS.map((tier) => new Ring(tier.size, tier.spans, arena));
    this.recentState = arena.take(Uint8Array, RECENT_RESULTS);
  }

  add(state: number, tenths: number | null, atMs: number): void {
    for (let i = 0; i < TIERS.length; i++) this.rings[i].add(Math.floor(atMs / TIERS[i].ms), state, tenths);
    this.addRecent(atMs, state, tenths);
  }

  addRecent(atMs: number, state: number, tenths: number | null): void {
    const i = this.recentNext;
    this.recentAtMs[i] = atMs;
    this.recentState[i] = state;
    this.recentTenths[i] = tenths ?? NO_LATENCY;
    this.recentNext = (i + 1) % RECENT_RESULTS;
    if (this.recentCount < RECENT_RESULTS) this.recentCount++;
  }

  /** The latency of recent result `i` in ms, or null. */
  recentLatencyMs(i: number): number | null {
    const tenths = this.recentTenths[i];
    return tenths === NO_LATENCY ? null : tenths / 10;
  }

  /** Indices of the recent results, oldest first. */
  *recentSlots(): Generator<number> {
    const start = (this.recentNext - this.recentCount + RECENT_RESULTS) % RECENT_RESULTS;
    for (let k = 0; k < this.recentCount; k++) yield (start + k) % RECENT_RESULTS;
  }

  toJSON(name: string): string {
    const recent: string[] = [];
    for (const i of this.recentSlots()) {
      recent.push(`[${this.recentAtMs[i]},"${STATES[this.recentState[i]]}",${this.recentLatencyMs(i)}]`);
    }
    const rings = TIERS.map((tier, i) => `"${tier.key}":${this.rings[i].toJSON()},`).join('');
    return `{"name":${JSON.stringify(name)},${rings}"recent":[${recent.join(',')}]}`;
  }
}

/** Integer tenths of a ms, as buckets keep them. */
function tenthsOf(latencyMs: number): number {
  return Math.min(Math.round(latencyMs * 10), MAX_LATENCY_TENTHS);
}

interface Plan {
  /** The TIERS entry whose ring answers the range. */
  readonly tier: number;
  /** Index of the range's first bucket, and how many buckets the range has. */
  readonly first: number;
  readonly n: number;
  readonly from: string;
  readonly to: string;
  readonly starts: readonly string[];
  readonly transitions: readonly Transition[];
  readonly slices: Slices;
}

interface StoredTransition {
  readonly transition: Transition;
  readonly atMs: number;
}

/**
 * Every check's history and the last MAX_TRANSITIONS transitions. Times are given by the caller
 * (`atMs`, `nowMs`: ms since the epoch, as Date.now()), which keeps it deterministic to test.
 */
export class History {
  readonly #checks = new Map<string, CheckHistory>();
  #transitions: StoredTransition[] = [];
  // uptime()'s scratch, so a call per check per snapshot allocates only its answer.
  readonly #day: (number | null)[] = [null];
  readonly #weekMonth: (number | null)[] = [null, null];

  /**
   * One check run. `atMs` should not go backwards for a check: a time before its newest bucket is
   * taken as the clock stepping back, and the buckets after it are dropped (docs/history.md).
   */
  record(check: string, state: CheckState, latencyMs: number | null, atMs: number): void {
    if (!Object.hasOwn(STATE_CODE, state)) {
      throw new TypeError(`history: state must be up, degraded or down, got ${show(state)}`);
    }
    const code = STATE_CODE[state];
    if (!Number.isFinite(atMs) || atMs < 0) {
      throw new RangeError(`history: atMs must be a time >= 0, got ${show(atMs)}`);
    }
    if (latencyMs !== null && !(Number.isFinite(latencyMs) && latencyMs >= 0)) {
      throw new RangeError(`history: latencyMs must be a number >= 0 or null, got ${show(latencyMs)}`);
    }
    let history = this.#checks.get(check);
    if (history === undefined) {
      history = new CheckHistory();
      this.#checks.set(check, history);
    }
    history.add(code, latencyMs === null ? null : tenthsOf(latencyMs), atMs);
  }

  /** Keeps a transition (a copy), dropping the oldest beyond MAX_TRANSITIONS. */
  addTransition(t: Transition): void {
    const atMs = Date.parse(t.time);
    if (!Number.isFinite(atMs)) throw new RangeError(`history: transition time must be ISO 8601, got ${show(t.time)}`);
    const copy: Transition = { time: t.time, check: t.check, from: t.from, to: t.to, reason: t.reason };
    this.#transitions.push({ transition: copy, atMs });
    // Trimmed in batches: one splice per 100 transitions instead of a shift per transition.
    if (this.#transitions.length >= MAX_TRANSITIONS + 100) {
      this.#transitions.splice(0, this.#transitions.length - MAX_TRANSITIONS);
    }
  }

  /** The kept transitions, oldest first (at most MAX_TRANSITIONS). */
  transitions(): readonly Transition[] {
    const start = Math.max(0, this.#transitions.length - MAX_TRANSITIONS);
    return this.#transitions.slice(start).map((s) => s.transition);
  }

  /** The check's latest RECENT_RESULTS runs, oldest first. */
  recent(check: string): readonly RecentResult[] {
    const history = this.#checks.get(check);
    if (history === undefined) return [];
    const out: RecentResult[] = [];
    for (const i of history.recentSlots()) {
      out.push({
        time: new Date(history.recentAtMs[i]).toISOString(),
        state: STATES[history.recentState[i]],
        latencyMs: history.recentLatencyMs(i),
      });
    }
    return out;
  }

  /** Names of the checks with history, e.g. to forget those a new configuration no longer has. */
  names(): string[] {
    return [...this.#checks.keys()];
  }

  /** Drops a check's buckets and results (a check removed by a reload); its transitions stay. */
  forget(check: string): void {
    this.#checks.delete(check);
  }

  /**
   * Percent of the check's runs whose state was not down, floored to two decimals, null without runs:
   * 24h over the 5-minute buckets of the last 24 h, 7d and 30d over the hour buckets, each window
   * ending with the bucket that holds `nowMs`. Cheap enough for every check on every snapshot: the
   * finished buckets are summed once per 5 minutes (24h) and once per hour (7d, 30d).
   */
  uptime(check: string, nowMs: number): Uptime {
    const history = this.#checks.get(check);
    if (history === undefined) return { '24h': null, '7d': null, '30d': null };
    history.rings[DAY_TIER].uptime(Math.floor(nowMs / TIERS[DAY_TIER].ms), this.#day);
    history.rings[WEEK_MONTH_TIER].uptime(Math.floor(nowMs / TIERS[WEEK_MONTH_TIER].ms), this.#weekMonth);
    return { '24h': this.#day[0], '7d': this.#weekMonth[0], '30d': this.#weekMonth[1] };
  }

  /**
   * GET /history's body as objects (see queryJson() for the same body as text, cheaper to send).
   * The range ends with the end of the bucket that holds `nowMs` (in the ring of TIERS that answers the
   * range), so slices line up with whole buckets. Each bucket counts once, in the
   * slice its start falls in: a slice shorter than a bucket that holds no bucket's start is empty.
   * Transitions are those in [from, to) of the checks asked, and the overall ones unless `overall` is false.
   */
  query(q: HistoryQuery, nowMs: number): HistoryAnswer {
    const plan = this.#plan(q, nowMs);
    const checks = q.checks.map((name) => this.#answer(plan, name));
    return { range: q.range, buckets: q.buckets, from: plan.from, to: plan.to, checks, transitions: plan.transitions };
  }

  /**
   * GET /history's body as JSON text in pieces: a head, one piece per check, and the transitions, each
   * built when asked for. A route that writes each piece and waits for 'drain' when write() says so
   * never holds the event loop for more than one check's slices, however many checks there are.
   * The text parses to exactly what query() answers.
   */
  *queryJson(q: HistoryQuery, nowMs: number): Generator<string> {
    const plan = this.#plan(q, nowMs);
    yield `{"range":"${q.range}","buckets":${q.buckets},"from":"${plan.from}","to":"${plan.to}","checks":[`;
    let comma = '';
    for (const name of q.checks) {
      // JSON.stringify of a check's objects measured faster than building its text by hand.
      yield comma + JSON.stringify(this.#answer(plan, name));
      comma = ',';
    }
    yield `],"transitions":${JSON.stringify(plan.transitions)}}`;
  }

  /** One check's part of the answer. */
  #answer(plan: Plan, name: string): CheckHistoryAnswer {
    const slices = plan.slices;
    slices.reset();
    const history = this.#checks.get(name);
    if (history !== undefined) history.rings[plan.tier].accumulate(plan.first, plan.n, slices);
    const buckets: HistoryBucket[] = [];
    for (let s = 0; s < plan.starts.length; s++) {
      const count = slices.count[s];
      buckets.push({
        start: plan.starts[s],
        up: slices.up[s],
        degraded: slices.degraded[s],
        down: slices.down[s],
        latencyMs:
          count === 0
            ? { min: null, avg: null, max: null }
            : {
                min: slices.minTenths[s] / 10,
                avg: Math.round(slices.sumTenths[s] / count) / 10,
                max: slices.maxTenths[s] / 10,
              },
      });
    }
    return { name, uptime: percent(slices.ok, slices.runs), buckets };
  }

  /** What every check's answer shares: the slices' starts, the range's buckets, the transitions. */
  #plan(q: HistoryQuery, nowMs: number): Plan {
    const rangeMs = RANGES[q.range];
    if (!Object.hasOwn(RANGES, q.range)) throw new RangeError(`history: unknown range ${show(q.range)}`);
    const count = q.buckets;
    if (!Number.isInteger(count) || count < 1 || count > MAX_QUERY_BUCKETS) {
      throw new RangeError(`history: buckets must be an integer 1-${MAX_QUERY_BUCKETS}, got ${show(count)}`);
    }
    const tier = TIERS.findIndex((t) => t.ms * t.size >= rangeMs);
    const resolutionMs = TIERS[tier].ms;
    const n = rangeMs / resolutionMs;
    const current = Math.floor(nowMs / resolutionMs);
    const toMs = (current + 1) * resolutionMs;
    const fromMs = toMs - rangeMs;
    const starts: string[] = [];
    for (let i = 0; i < count; i++) starts.push(new Date(fromMs + Math.ceil((i * rangeMs) / count)).toISOString());
    const wanted = new Set(q.checks);
    const overall = q.overall ?? true;
    const transitions: Transition[] = [];
    for (let i = Math.max(0, this.#transitions.length - MAX_TRANSITIONS); i < this.#transitions.length; i++) {
      const { transition: t, atMs } = this.#transitions[i];
      if (atMs < fromMs || atMs >= toMs) continue;
      if (t.check === null ? overall : wanted.has(t.check)) transitions.push(t);
    }
    return {
      tier,
      first: current - n + 1,
      n,
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      starts,
      transitions,
      slices: new Slices(count),
    };
  }

  /**
   * The state file's JSON text in pieces: a head with the transitions, then one piece per check
   * (about 100 KB each), then the tail. Each piece is built when asked for, so a writer that yields
   * between pieces never holds the event loop for more than one check's serialization.
   */
  *jsonPieces(): Generator<string> {
    yield `{"version":${HISTORY_VERSION},"transitions":${JSON.stringify(this.transitions())},"checks":[`;
    let comma = '';
    for (const [name, history] of this.#checks) {
      yield comma + history.toJSON(name);
      comma = ',';
    }
    yield ']}';
  }

  /** A History from the parsed state file; throws an Error saying what is wrong with anything malformed. */
  static fromJSON(value: unknown): History {
    const o = record(value, 'history');
    const version = o.version;
    if (version !== 1 && version !== 2 && version !== HISTORY_VERSION) {
      fail(`history.version must be 1, 2 or ${HISTORY_VERSION}, got ${show(version)}`);
    }
    if (!Array.isArray(o.transitions)) fail(`history.transitions must be an array, got ${describe(o.transitions)}`);
    if (!Array.isArray(o.checks)) fail(`history.checks must be an array, got ${describe(o.checks)}`);
    const history = new History();
    o.transitions.forEach((t: unknown, i: number) => {
      history.addTransition(transition(t, `history.transitions[${i}]`));
    });
    o.checks.forEach((c: unknown, i: number) => {
      const where = `history.checks[${i}]`;
      const entry = record(c, where);
      if (typeof entry.name !== 'string') fail(`${where}.name must be a string, got ${show(entry.name)}`);
      if (history.#checks.has(entry.name)) fail(`${where}.name ${JSON.stringify(entry.name)} appears twice`);
      const check = new CheckHistory();
      if (version === HISTORY_VERSION) {
        TIERS.forEach((tier, t) => {
          check.rings[t].load(entry[tier.key], `${where}.${tier.key}`, version);
        });
      } else {
        // 24 h of minutes and 90 days of hours, each folded into the rings it feeds.
        const minutes = new Ring(LEGACY_MINUTES, [], new Arena(LEGACY_MINUTES * PER_BUCKET * 2));
        const hours = new Ring(LEGACY_HOURS, [], new Arena(LEGACY_HOURS * PER_BUCKET * 2));
        minutes.load(entry.minutes, `${where}.minutes`, version);
        hours.load(entry.hours, `${where}.hours`, version);
        TIERS.forEach((tier, t) => {
          const source = tier.ms < HOUR_MS ? minutes : hours;
          check.rings[t].mergeFrom(source, tier.ms / (tier.ms < HOUR_MS ? MINUTE_MS : HOUR_MS));
        });
      }
      const recent = entry.recent;
      if (!Array.isArray(recent) || recent.length > RECENT_RESULTS) {
        fail(`${where}.recent must be an array of at most ${RECENT_RESULTS} results, got ${describe(recent)}`);
      }
      recent.forEach((r: unknown, k: number) => {
        const [atMs, state, latency] = Array.isArray(r) && r.length === 3 ? r : [];
        const valid =
          typeof atMs === 'number' &&
          Number.isFinite(atMs) &&
          atMs >= 0 &&
          Object.hasOwn(STATE_CODE, state) &&
          (latency === null || (typeof latency === 'number' && Number.isFinite(latency) && latency >= 0));
        if (!valid) fail(`${where}.recent[${k}] must be [time ms, state, latency ms or null], got ${show(r)}`);
        check.addRecent(atMs, STATE_CODE[state as CheckState], latency === null ? null : tenthsOf(latency));
      });
      history.#checks.set(entry.name, check);
    });
    return history;
  }
}

function transition(value: unknown, where: string): Transition {
  const t = record(value, where);
  const state = (v: unknown): boolean => typeof v === 'string' && Object.hasOwn(STATE_CODE, v);
  if (typeof t.time !== 'string' || !Number.isFinite(Date.parse(t.time))) {
    fail(`${where}.time must be ISO 8601, got ${show(t.time)}`);
  }
  if (t.check !== null && typeof t.check !== 'string') {
    fail(`${where}.check must be a string or null, got ${show(t.check)}`);
  }
  if (t.from !== null && !state(t.from)) fail(`${where}.from must be a state or null, got ${show(t.from)}`);
  if (!state(t.to)) fail(`${where}.to must be a state, got ${show(t.to)}`);
  if (t.reason !== null && typeof t.reason !== 'string') {
    fail(`${where}.reason must be a string or null, got ${show(t.reason)}`);
  }
  return t as unknown as Transition;
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`${where} must be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function fail(message: string): never {
  throw new Error(message);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  return value === null ? 'null' : typeof value;
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
