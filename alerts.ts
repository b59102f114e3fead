// alerts.ts: webhook alerts. Each state transition becomes one POST per matching target (JSON, or
// Slack-style text), queued, timed out and retried off the caller's stack.
// It never blocks or throws into its caller, and never shows a webhook URL beyond scheme://host.
//
// What is sent, retried and logged: docs/alerts.md

import http from 'node:http';
import https from 'node:https';
import type { Logger } from './log.ts';
import type { CheckState, Transition } from './status.ts';

/** Longest one POST may take, connect to last byte of the answer (a silent target included). */
export const ALERT_TIMEOUT_MS = 5000;
/** Waits before the 2nd, 3rd and 4th attempt, after a network error, a timeout or a 5xx. */
export const ALERT_RETRY_DELAYS_MS: readonly number[] = Object.freeze([1000, 2000, 4000]);
/** Alerts waiting to be sent, over every target; beyond it the oldest waiting one is dropped. */
export const MAX_ALERT_QUEUE = 1000;
/** Slack cuts text itself, Discord refuses more than 2000 characters; one line needs far less. */
const MAX_SLACK_TEXT_CHARS = 1000;

const STATES: readonly CheckState[] = ['down', 'degraded', 'up'];
const FORMATS = ['json', 'slack'] as const;
const FIELDS = ['url', 'format', 'on', 'checks'];

export interface AlertTarget {
  /** The real URL, with any credentials, path and query: a secret, never logged. */
  readonly url: string;
  /** `scheme://host[:port]`: what logs and errors show of the URL. */
  readonly shownAs: string;
  readonly format: 'json' | 'slack';
  /** Transitions to these states are sent. */
  readonly on: ReadonlySet<CheckState>;
  /** Transitions of these checks are sent; null = every check and the overall status. */
  readonly checks: ReadonlySet<string> | null;
}

/** What a body says besides the transition. */
export interface AlertContext {
  /** The overall status now. */
  readonly status: CheckState;
  readonly hostname: string;
  readonly version: string;
  readonly title: string;
}

// ---------------------------------------------------------------- configuration

/**
 * Parses CONFIG_FILE's `alerts` (undefined = no alerts). Every problem is reported, each naming
 * `source` (the file), the alert's index, the field, the value and what is accepted; a URL is
 * shown as scheme://host only. With `checkNames`, a name in `checks` that is not one of them is
 * a problem too (a typo there would silence an alert).
 */
export function parseAlertTargets(
  value: unknown,
  source: string,
  checkNames?: ReadonlySet<string>,
): { targets: AlertTarget[]; problems: string[] } {
  const targets: AlertTarget[] = [];
  const problems: string[] = [];
  if (value === undefined) return { targets, problems };
  if (!Array.isArray(value)) {
    const accepted = 'an array of {url, format, on, checks} objects';
    problems.push(`config: ${source}: alerts must be ${accepted}, got ${describe(value)}`);
    return { targets, problems };
  }
  value.forEach((entry: unknown, index) => {
    const at = `config: ${source}: alerts[${index}]`;
    if (!isObject(entry)) {
      problems.push(`${at} must be an object {url, format, on, checks}, got ${describe(entry)}`);
      return;
    }
    const before = problems.length;
    for (const key of Object.keys(entry)) {
      if (FIELDS.includes(key)) continue;
      problems.push(`${at} has an unknown field ${safeQuote(key)}; accepted: ${FIELDS.join(', ')}`);
    }
    const url = parseUrl(entry.url, `${at}.url`, problems);
    const format = entry.format ?? 'json';
    if (!FORMATS.includes(format as 'json')) {
      problems.push(`${at}.format must be "json" or "slack", got ${describe(format)}`);
    }
    const on = parseOn(entry.on, `${at}.on`, problems);
    const checks = parseChecks(entry.checks, `${at}.checks`, problems, checkNames);
    if (problems.length > before || url === null) return;
    const shownAs = showUrl(url);
    targets.push(Object.freeze({ url: url.href, shownAs, format: format as 'json' | 'slack', on, checks }));
  });
  return { targets, problems };
}

function parseUrl(value: unknown, at: string, problems: string[]): URL | null {
  const accepted = 'an http:// or https:// URL';
  if (typeof value !== 'string') {
    const got = value === undefined ? 'nothing (it is required)' : typeOf(value);
    problems.push(`${at} must be ${accepted}, got ${got}`);
    return null;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Not even its start is shown: a webhook URL without its scheme is still a secret.
    problems.push(`${at} must be ${accepted}, got a string of ${value.length} characters that is not an absolute URL`);
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${at} must be ${accepted}, got "${showUrl(url)}"`);
    return null;
  }
  return url;
}

function parseOn(value: unknown, at: string, problems: string[]): ReadonlySet<CheckState> {
  const accepted = 'a non-empty array of "down", "degraded", "up"';
  if (value === undefined) return new Set(STATES);
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`${at} must be ${accepted}, got ${describe(value)}`);
    return new Set();
  }
  const on = new Set<CheckState>();
  value.forEach((state: unknown, i) => {
    if (STATES.includes(state as CheckState)) on.add(state as CheckState);
    else problems.push(`${at}[${i}] must be one of "down", "degraded", "up", got ${describe(state)}`);
  });
  return on;
}

function parseChecks(
  value: unknown,
  at: string,
  problems: string[],
  checkNames: ReadonlySet<string> | undefined,
): ReadonlySet<string> | null {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length === 0) {
    const accepted = 'a non-empty array of check names (leave it out for every check and the overall status)';
    problems.push(`${at} must be ${accepted}, got ${describe(value)}`);
    return null;
  }
  const checks = new Set<string>();
  value.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || name === '') {
      problems.push(`${at}[${i}] must be a check name, got ${describe(name)}`);
    } else if (checkNames && !checkNames.has(name)) {
      problems.push(`${at}[${i}] must be the name of a check, got ${safeQuote(name)}`);
    } else checks.add(name);
  });
  return checks;
}

/** scheme://host[:port] of a URL: no credentials, path, query or fragment. */
export function showUrl(url: URL): string {
  return url.host === '' ? url.protocol : `${url.protocol}//${url.host}`;
}

// A config value that holds a URL is shown up to that URL's scheme://host and no further, so a
// webhook URL pasted into the wrong field is not printed either.
const URL_START = /[a-z][a-z0-9+.-]*:\/\//i;

function hideUrls(text: string): string {
  const start = text.search(URL_START);
  if (start === -1) return text;
  const rest = text.slice(start);
  const candidate = rest.split(/\s/, 1)[0] ?? rest;
  let shown: string;
  try {
    shown = showUrl(new URL(candidate));
  } catch {
    shown = `${rest.slice(0, rest.indexOf(':'))}://`;
  }
  return `${text.slice(0, start)}${shown}${shown.length < rest.length ? '…' : ''}`;
}

function safeQuote(text: string): string {
  const shown = hideUrls(text);
  return JSON.stringify(shown.length > 60 ? `${shown.slice(0, 60)}…` : shown);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return safeQuote(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return typeOf(value);
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------- bodies

/** The `json` body: the transition, the overall status and who sends it. */
export function jsonBody(t: Transition, c: AlertContext): string {
  return JSON.stringify({
    time: t.time,
    check: t.check,
    from: t.from,
    to: t.to,
    reason: t.reason,
    status: c.status,
    service: { hostname: c.hostname, version: c.version, title: c.title },
  });
}

const EMOJI: Record<CheckState, string> = { down: ':red_circle:', degraded: ':warning:', up: ':white_check_mark:' };

/**
 * The `slack` body's one line, e.g. `:red_circle: web is down: HTTP 503, expected 200-299
 * (status-stream on host1)`. &, < and > are escaped as Slack requires (the rest of the text would
 * otherwise be read as links and mentions: https://api.slack.com/reference/surfaces/formatting#escaping),
 * and @channel, @here, @all and @everyone are broken with a zero-width space so that a reason
 * taken from a target's answer cannot notify a whole channel.
 */
export function slackText(t: Transition, c: AlertContext): string {
  const subject = t.check === null ? 'overall status' : t.check;
  let line = `${subject} is ${t.to}`;
  if (t.to === 'up') line += t.from === null ? '' : ` again (was ${t.from})`;
  else if (t.reason) line += `: ${t.reason}`;
  const who = c.title === c.hostname ? `status-stream on ${c.hostname}` : `${c.title} on ${c.hostname}`;
  line = `${line} (${who})`
    .replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ')
    .replace(/[&<>]/g, (ch) => (ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : '&gt;'))
    .replace(/@(channel|here|all|everyone)\b/gi, '@\u200b$1');
  if (line.length > MAX_SLACK_TEXT_CHARS) line = `${line.slice(0, MAX_SLACK_TEXT_CHARS - 1)}…`;
  return `${EMOJI[t.to]} ${line}`;
}

export function slackBody(t: Transition, c: AlertContext): string {
  return JSON.stringify({ text: slackText(t, c) });
}

// ---------------------------------------------------------------- delivery

interface Delivery {
  readonly seq: number;
  readonly target: AlertTarget;
  readonly transition: Transition;
  readonly context: AlertContext;
  done: boolean;
}

/** One target URL's waiting deliveries; one is sent at a time, in order. */
interface Lane {
  readonly waiting: Delivery[];
  busy: boolean;
}

interface Attempt {
  /** rejected: a 3xx or 4xx, which sending again will not change; retry: a network error, timeout or 5xx. */
  readonly kind: 'sent' | 'rejected' | 'retry';
  /** `HTTP 503`, `timeout`, `ECONNREFUSED`, …: never the URL. */
  readonly detail: string;
}

export interface AlerterOptions {
  readonly targets: readonly AlertTarget[];
  readonly log: Logger;
  /** True while alerts must not be sent (maintenance); checked when a transition is notified. */
  readonly suppressed?: () => boolean;
  /** Per POST, ms; default ALERT_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Waits before each retry, ms; its length is the number of retries. Default ALERT_RETRY_DELAYS_MS. */
  readonly retryDelaysMs?: readonly number[];
  /** Waiting alerts kept, over every target; default MAX_ALERT_QUEUE. */
  readonly maxQueue?: number;
}

/**
 * Sends transitions to webhook targets. Each target URL gets one POST at a time, in order, so a
 * target that hangs or fails delays only its own alerts; every alert ends as exactly one of
 * `stats.sent`, `stats.failed` or `stats.dropped`.
 */
export class Alerter {
  /** Alerts delivered (2xx), given up on (3xx, 4xx, retries used up), dropped (queue full, shutdown). */
  readonly stats = { sent: 0, failed: 0, dropped: 0 };
  readonly timeoutMs: number;
  readonly retryDelaysMs: readonly number[];
  readonly maxQueue: number;
  #targets: readonly AlertTarget[];
  readonly #log: Logger;
  readonly #suppressed: () => boolean;
  readonly #lanes = new Map<string, Lane>();
  readonly #inFlight = new Set<Delivery>();
  #waiting = 0;
  #seq = 0;
  #pump: NodeJS.Immediate | null = null;
  #abort = new AbortController();
  #idleWaiters: Array<() => void> = [];
  #stopped = false;

  constructor(o: AlerterOptions) {
    this.#targets = o.targets;
    this.#log = o.log;
    this.#suppressed = o.suppressed ?? (() => false);
    this.timeoutMs = o.timeoutMs ?? ALERT_TIMEOUT_MS;
    this.retryDelaysMs = o.retryDelaysMs ?? ALERT_RETRY_DELAYS_MS;
    this.maxQueue = o.maxQueue ?? MAX_ALERT_QUEUE;
  }

  /** Alerts waiting to be sent (not counting the ones being sent or waiting for a retry). */
  get waiting(): number {
    return this.#waiting;
  }

  /** Alerts being sent, or waiting between attempts. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Targets for the next transitions (a reload); alerts already queued still go to their target. */
  setTargets(targets: readonly AlertTarget[]): void {
    this.#targets = targets;
  }

  /**
   * Queues one alert per matching target and returns: the POSTs start on a later turn of the
   * event loop. Never throws. Nothing is queued while `suppressed()` is true.
   */
  notify(transition: Transition, context: AlertContext): void {
    try {
      const matching = this.#targets.filter((target) => matches(target, transition));
      if (matching.length === 0 || this.#isSuppressed()) return;
      for (const target of matching) {
        const delivery: Delivery = { seq: this.#seq++, target, transition, context, done: false };
        if (this.#stopped) {
          this.#finish(delivery, 'dropped', 'stopped');
          continue;
        }
        let lane = this.#lanes.get(target.url);
        if (!lane) this.#lanes.set(target.url, (lane = { waiting: [], busy: false }));
        lane.waiting.push(delivery);
        this.#waiting++;
        if (this.#waiting > this.maxQueue) this.#dropOldest();
      }
      if (!this.#stopped) this.#pump ??= setImmediate(() => this.#startLanes());
    } catch (err) {
      this.#log.error('alert not queued', { err: err as Error });
    }
  }

  /**
   * Resolves when nothing is waiting or being sent, or after `withinMs` (what is left then is
   * dropped and counted): shutdown gives it what remains of its grace.
   */
  drain(withinMs: number): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#abandon('shutdown'), Math.max(0, withinMs));
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Drops what is waiting, aborts the POSTs and retry waits under way; later alerts are dropped. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#pump) clearImmediate(this.#pump);
    this.#pump = null;
    this.#abandon('stopped');
  }

  #isSuppressed(): boolean {
    try {
      return this.#suppressed();
    } catch (err) {
      // Better an alert during maintenance than a silent outage.
      this.#log.error('alert suppression check failed; sending', { err: err as Error });
      return false;
    }
  }

  #isIdle(): boolean {
    return this.#waiting === 0 && this.#inFlight.size === 0;
  }

  #dropOldest(): void {
    let oldest: Lane | undefined;
    let oldestSeq = Number.POSITIVE_INFINITY;
    for (const lane of this.#lanes.values()) {
      const seq = lane.waiting[0]?.seq ?? Number.POSITIVE_INFINITY;
      if (seq < oldestSeq) [oldest, oldestSeq] = [lane, seq];
    }
    const delivery = oldest?.waiting.shift();
    if (!delivery) return;
    this.#waiting--;
    this.#finish(delivery, 'dropped', 'queue full');
  }

  #startLanes(): void {
    this.#pump = null;
    for (const [url, lane] of this.#lanes) {
      if (!lane.busy) {
        lane.busy = true;
        // Only a logger that throws could get to the catch: the lane is freed, nothing else is lost.
        this.#runLane(url, lane).catch(() => (lane.busy = false));
      }
    }
  }

  async #runLane(url: string, lane: Lane): Promise<void> {
    let delivery: Delivery | undefined;
    while (!this.#stopped && (delivery = lane.waiting.shift())) {
      this.#waiting--;
      this.#inFlight.add(delivery);
      await this.#deliver(delivery);
    }
    lane.busy = false;
    if (lane.waiting.length === 0 && this.#lanes.get(url) === lane) this.#lanes.delete(url);
  }

  async #deliver(d: Delivery): Promise<void> {
    const signal = this.#abort.signal;
    const body = d.target.format === 'slack' ? slackBody(d.transition, d.context) : jsonBody(d.transition, d.context);
    const userAgent = `status-stream/${d.context.version.replace(/[^\x21-\x7e]/g, '')} (alerts)`;
    for (let attempt = 1; ; attempt++) {
      const result = await post(d.target.url, body, userAgent, this.timeoutMs, signal);
      if (d.done) return; // dropped by drain() or stop() meanwhile, which also aborted the POST
      if (result.kind === 'sent') return this.#finish(d, 'sent', result.detail, attempt);
      if (result.kind === 'rejected' || attempt > this.retryDelaysMs.length) {
        return this.#finish(d, 'failed', result.detail, attempt);
      }
      const waitMs = this.retryDelaysMs[attempt - 1] ?? 0;
      const { shownAs: target } = d.target;
      const { check, to } = d.transition;
      const error = result.detail;
      this.#log.debug('alert attempt failed; retrying', { target, check, to, attempt, error, retryInMs: waitMs });
      await delay(waitMs, signal);
      if (d.done) return;
    }
  }

  #finish(d: Delivery, result: 'sent' | 'failed' | 'dropped', detail: string, attempts = 0): void {
    if (d.done) return;
    d.done = true;
    this.#inFlight.delete(d);
    this.stats[result]++;
    const fields = { target: d.target.shownAs, check: d.transition.check, to: d.transition.to };
    if (result === 'sent') this.#log.debug('alert sent', { ...fields, attempts, answer: detail });
    else if (result === 'failed') this.#log.warn('alert failed', { ...fields, attempts, error: detail });
    else this.#log.warn('alert dropped', { ...fields, reason: detail });
    if (this.#idleWaiters.length > 0 && this.#isIdle()) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Drops everything waiting or under way, as `reason`. */
  #abandon(reason: string): void {
    const left: Delivery[] = [...this.#inFlight];
    for (const lane of this.#lanes.values()) left.push(...lane.waiting.splice(0));
    this.#waiting = 0;
    this.#abort.abort();
    this.#abort = new AbortController();
    left.sort((a, b) => a.seq - b.seq);
    for (const d of left) this.#finish(d, 'dropped', reason);
    // Resolves drain() even when nothing was left (the waiters are otherwise called by #finish).
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function matches(target: AlertTarget, t: Transition): boolean {
  if (!target.on.has(t.to)) return false;
  return target.checks === null || (t.check !== null && target.checks.has(t.check));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * One POST, settled by the whole answer or `timeoutMs` after it started, whichever comes first
 * (the socket is closed then). Judged by the status code when one came. Never rejects.
 */
function post(url: string, body: string, userAgent: string, timeoutMs: number, signal: AbortSignal): Promise<Attempt> {
  return new Promise((resolve) => {
    let status = 0;
    let settled = false;
    let req: http.ClientRequest | undefined;
    const settle = (attempt: Attempt): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      req?.destroy();
      resolve(attempt);
    };
    const judge = (fallback: string): Attempt => {
      if (status === 0) return { kind: 'retry', detail: fallback };
      const detail = `HTTP ${status}`;
      if (status >= 200 && status < 300) return { kind: 'sent', detail };
      return { kind: status >= 500 ? 'retry' : 'rejected', detail };
    };
    const onAbort = (): void => settle({ kind: 'retry', detail: 'aborted' });
    const timer = setTimeout(() => settle(judge('timeout')), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // agent: false: a new connection per POST, closed by settle(); alerts are rare, and no
      // pooled socket outlives stop().
      req = (url.startsWith('https:') ? https : http).request(url, {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': userAgent,
        },
      });
    } catch (err) {
      settle({ kind: 'rejected', detail: errorDetail(err) });
      return;
    }
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.on('data', () => {}); // read and discard: the answer is not kept
      res.on('end', () => settle(judge('no answer')));
      res.on('error', () => settle(judge('connection reset')));
    });
    req.on('error', (err) => settle(judge(errorDetail(err))));
    req.end(body);
  });
}

/** An error as a log field: its code (ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID, …), never its message,
 * which may quote the URL. */
function errorDetail(err: unknown): string {
  const { code, name } = err as NodeJS.ErrnoException;
  return typeof code === 'string' && code !== '' ? code : String(name);
}
