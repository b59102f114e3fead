// checks/conditions.ts: what "healthy" means for a check: status ranges, JSON paths and
// strict JSON equality, and how findings become one state with one reason.
// Pure functions only: no I/O, no clock.

import type { CheckState, StatusRange } from './index.ts';

/** A condition that did not hold. */
export interface Finding {
  readonly state: 'down' | 'degraded';
  readonly reason: string;
}

/** The worst finding wins (down over degraded), the first of equals gives the reason. */
export function judge(findings: ReadonlyArray<Finding | null>): { state: CheckState; reason: string | null } {
  const present = findings.filter((f): f is Finding => f !== null);
  const worst = present.find((f) => f.state === 'down') ?? present[0];
  return worst === undefined ? { state: 'up', reason: null } : { state: worst.state, reason: worst.reason };
}

/** Passing but slower than degradedMs: `slow: 812 ms > 300 ms`. */
export function latencyFinding(latencyMs: number, degradedMs: number | null): Finding | null {
  if (degradedMs === null || latencyMs <= degradedMs) return null;
  return { state: 'degraded', reason: `slow: ${Math.round(latencyMs)} ms > ${degradedMs} ms` };
}

// ---------------------------------------------------------------- HTTP status codes

export const DEFAULT_STATUS: readonly StatusRange[] = Object.freeze([Object.freeze({ low: 200, high: 399 })]);
// RFC 9110 §15: a status code is three digits, 100-599.
const MIN_STATUS = 100;
const MAX_STATUS = 599;
const STATUS_ACCEPTED = `a status code ${MIN_STATUS}-${MAX_STATUS}, a range like "200-299", or a list of them`;

/**
 * expect.status: a code (204), a range ("200-299") or a list of them ([200, "300-308"]).
 * Each bad element is reported through `bad`; null when anything was bad.
 */
export function parseStatusRanges(
  value: unknown,
  bad: (given: unknown, accepted: string) => void,
): StatusRange[] | null {
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) {
    bad(value, STATUS_ACCEPTED);
    return null;
  }
  const ranges: StatusRange[] = [];
  let ok = true;
  for (const item of items) {
    const range = statusRange(item);
    if (typeof range === 'string') {
      bad(item, range);
      ok = false;
    } else {
      ranges.push(Object.freeze(range));
    }
  }
  return ok ? ranges : null;
}

function statusRange(item: unknown): StatusRange | string {
  if (typeof item === 'number') {
    return isStatus(item) ? { low: item, high: item } : `a status code ${MIN_STATUS}-${MAX_STATUS}`;
  }
  if (typeof item !== 'string') return STATUS_ACCEPTED;
  const match = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(item);
  if (match === null) return STATUS_ACCEPTED;
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  if (!isStatus(low) || !isStatus(high)) return `a status code ${MIN_STATUS}-${MAX_STATUS}`;
  if (low > high) return 'a range low-high with low <= high';
  return { low, high };
}

function isStatus(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_STATUS && n <= MAX_STATUS;
}

/** `HTTP 503, expected 200-299` when `code` is in none of the ranges. */
export function statusFinding(code: number, ranges: readonly StatusRange[]): Finding | null {
  if (ranges.some((r) => code >= r.low && code <= r.high)) return null;
  return { state: 'down', reason: `HTTP ${code}, expected ${formatRanges(ranges)}` };
}

export function formatRanges(ranges: readonly StatusRange[]): string {
  return ranges.map((r) => (r.low === r.high ? String(r.low) : `${r.low}-${r.high}`)).join(', ');
}

// ---------------------------------------------------------------- body conditions

export function bodyContainsFinding(body: string, text: string): Finding | null {
  return body.includes(text) ? null : { state: 'down', reason: `body does not contain ${shortJson(text)}` };
}

/** A path is dot-separated object keys and array indexes: "a.b.0.c". */
export function isJsonPath(path: unknown): path is string {
  return typeof path === 'string' && path.split('.').every((segment) => segment !== '');
}

/**
 * expect.json: the body parses as JSON and the value at `path` equals `equals` by strict
 * JSON equality: `$.status is "DOWN", expected "UP"`.
 */
export function jsonFinding(
  body: string,
  expected: { readonly path: string; readonly equals: unknown },
): Finding | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { state: 'down', reason: 'body is not JSON' };
  }
  let value = doc;
  const segments = expected.path.split('.');
  for (let i = 0; i < segments.length; i++) {
    const next = child(value, segments[i]);
    if (next === undefined) {
      return {
        state: 'down',
        reason: `$.${segments.slice(0, i + 1).join('.')} is missing, expected ${shortJson(expected.equals)}`,
      };
    }
    value = next.value;
  }
  if (jsonEquals(value, expected.equals)) return null;
  return { state: 'down', reason: `$.${expected.path} is ${shortJson(value)}, expected ${shortJson(expected.equals)}` };
}

function child(value: unknown, segment: string): { value: unknown } | undefined {
  if (Array.isArray(value)) {
    if (!/^(?:0|[1-9]\d*)$/.test(segment)) return undefined;
    const index = Number(segment);
    return index < value.length ? { value: value[index] } : undefined;
  }
  if (typeof value === 'object' && value !== null && Object.hasOwn(value, segment)) {
    return { value: (value as Record<string, unknown>)[segment] };
  }
  return undefined;
}

/** Equality of JSON values: same type and value, arrays in order, objects by key set ("3" is not 3). */
export function jsonEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEquals(item, b[i]));
  }
  const aKeys = Object.keys(a);
  const bRecord = b as Record<string, unknown>;
  if (aKeys.length !== Object.keys(b).length) return false;
  return aKeys.every((key) => Object.hasOwn(b, key) && jsonEquals((a as Record<string, unknown>)[key], bRecord[key]));
}

/** A value for a reason line: JSON, cut to 40 characters. */
export function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

// ---------------------------------------------------------------- durations

const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/** A duration in the largest unit that keeps two digits of precision: 812ms, 45s, 12m, 26h, 3d. */
export function humanDuration(ms: number): string {
  if (ms < SECOND_MS) return `${Math.round(ms)}ms`;
  if (ms < 120 * SECOND_MS) return `${Math.round(ms / SECOND_MS)}s`;
  if (ms < 120 * MINUTE_MS) return `${Math.round(ms / MINUTE_MS)}m`;
  if (ms < 48 * HOUR_MS) return `${Math.round(ms / HOUR_MS)}h`;
  return `${Math.round(ms / DAY_MS)}d`;
}

/** `5 days`, `1 day`, `3 hours`, `less than an hour`. */
export function humanDays(ms: number): string {
  if (ms >= DAY_MS) {
    const days = Math.round(ms / DAY_MS);
    return days === 1 ? '1 day' : `${days} days`;
  }
  const hours = Math.round(ms / HOUR_MS);
  if (hours < 1) return 'less than an hour';
  return hours === 1 ? '1 hour' : `${hours} hours`;
}
