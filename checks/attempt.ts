// checks/attempt.ts: one network attempt bounded by a timeout, and how its errors read.
// The first outcome wins; whatever the attempt opened is destroyed. Never rejects.

import { performance } from 'node:perf_hooks';
import type { Outcome } from './index.ts';

/** An outcome before its latency is stamped. */
export type Result = Omit<Outcome, 'latencyMs'>;

/**
 * Runs `attempt`, which reports through `settle`; after `timeoutMs` the outcome is a
 * `timeout` (with `timeoutReason`). The attempt's handle is destroyed as soon as an
 * outcome is known, and the latency is the time until then. A throw is an outcome too.
 */
export function bounded(
  timeoutMs: number,
  timeoutReason: () => string,
  attempt: (settle: (result: Result) => void, startMs: number) => { destroy(): void },
): Promise<Outcome> {
  return new Promise((resolve) => {
    const startMs = performance.now();
    let settled = false;
    let handle: { destroy(): void } | null = null;
    const settle = (result: Result): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      handle?.destroy();
      resolve({ ...result, latencyMs: elapsedMs(startMs) });
    };
    const timer = setTimeout(() => settle({ state: 'down', detail: 'timeout', reason: timeoutReason() }), timeoutMs);
    try {
      handle = attempt(settle, startMs);
      // An attempt may settle synchronously, before its handle is known.
      if (settled) handle.destroy();
    } catch (err) {
      settle(failure(err));
    }
  });
}

/** Milliseconds since `startMs` (performance.now()), 0.1 ms precision. */
export function elapsedMs(startMs: number): number {
  return Math.round((performance.now() - startMs) * 10) / 10;
}

/** A failed attempt: its code as the detail, in words as the reason. */
export function failure(err: unknown): Result {
  const detail = errorDetail(err);
  return { state: 'down', detail, reason: ERROR_REASONS[detail] ?? detail };
}

function errorDetail(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return typeof code === 'string' ? code : err.message;
  }
  return String(err);
}

// The common network errors in words (Node docs, "Common system errors"; c-ares codes of node:dns).
const ERROR_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'name not found',
  EAI_AGAIN: 'name lookup failed, try again',
  EPIPE: 'connection closed while sending',
  ETIMEDOUT: 'connection timed out',
  ENODATA: 'no answers',
  ESERVFAIL: 'the DNS server failed',
  EREFUSED: 'the DNS server refused the query',
  ECONNABORTED: 'connection aborted',
};
