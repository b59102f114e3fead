// tests/page.test.ts: the status page (page.html, SPEC 9) in real headless Chromium
// against the real service: what it shows, that it runs under the service's
// Content-Security-Policy, that stream text is never parsed as HTML, that it recovers
// from restarts, that it passes its ?token= on, and that it works under Nginx's sub-path.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { freePort, request, skipUnless, startService, waitFor, withDeadline, type Service } from './helpers.ts';
import { NGINX_BIN, startNginx } from './nginx-helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = skipUnless(CHROMIUM, 'chromium');
const XSS_NAME = '<img src=x onerror=alert(1)>';

// Page-side code is passed as source text: tsx's esbuild wraps named functions in a
// __name() helper that does not exist in the page.
const SHOWN = `(() => {
  const text = (id) => document.getElementById(id)?.textContent ?? '';
  return {
    conn: document.getElementById('conn').getAttribute('data-state'),
    connText: text('conn-text'),
    status: text('status'),
    bannerStatus: document.getElementById('banner').getAttribute('data-status'),
    eventId: text('event-id'),
    rows: [...document.querySelectorAll('#checks tr')].map((tr) => [...tr.children].map((td) => td.textContent ?? '')),
  };
})()`;
const RECORD_CSP_VIOLATIONS = `window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`;

/** A page and everything it did that a test may want to rule out. */
interface Watched {
  readonly page: Page;
  readonly dialogs: string[];
  readonly consoleErrors: string[];
  readonly pageErrors: string[];
  readonly requests: string[];
}

/** What the page shows, read in one evaluate. */
interface Shown {
  conn: string | null;
  connText: string;
  status: string;
  bannerStatus: string | null;
  eventId: string;
  rows: string[][];
}

describe('the status page in Chromium', { skip, timeout: 120_000 }, () => {
  let context: BrowserContext;
  let userDataDir: string;
  let app: http.Server;
  let appUrl: string;
  let closedPort: number;
  let service: Service;

  before(async () => {
    userDataDir = mkdtempSync(join(tmpdir(), 'status-stream-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 1000, height: 700 },
      colorScheme: 'light',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    // The app the checks watch: answers 200 on every path.
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    closedPort = await freePort(); // nothing listens: the TCP check fails
    service = await startService({
      STATUS_INTERVAL_MS: '500',
      CHECKS: `app=${appUrl}/healthz,${XSS_NAME}=${appUrl}/,db=tcp://127.0.0.1:${closedPort}`,
    });
  });

  after(async () => {
    await context?.close();
    await service?.stop();
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  async function open(url: string): Promise<Watched> {
    const page = await context.newPage();
    const watched: Watched = { page, dialogs: [], consoleErrors: [], pageErrors: [], requests: [] };
    page.on('dialog', (dialog) => {
      watched.dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (message) => { if (message.type() === 'error') watched.consoleErrors.push(message.text()); });
    page.on('pageerror', (err) => watched.pageErrors.push(String(err)));
    page.on('request', (req) => watched.requests.push(req.url()));
    // Runs before the page's own script (injected by the browser, so outside the CSP).
    await page.addInitScript(RECORD_CSP_VIOLATIONS);
    await page.goto(url, { timeout: 10_000 });
    return watched;
  }

  function shown(page: Page): Promise<Shown> {
    return page.evaluate(SHOWN) as Promise<Shown>;
  }

  /** Polls what the page shows until `condition` holds; the error says what it showed. */
  async function until(page: Page, condition: (s: Shown) => boolean, ms: number, what: string): Promise<Shown> {
    let last: Shown | undefined;
    try {
      await waitFor(async () => condition((last = await shown(page))), ms, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the page showed ${JSON.stringify(last)}`);
    }
    return last!;
  }

  const live = (s: Shown): boolean => s.conn === 'live' && s.status !== 'waiting';
  const bootOf = (id: string): string => id.slice(0, id.lastIndexOf('-'));

  test('shows the overall status in words and colour and a row for every check within a few seconds', async () => {
    const { page } = await open(`${service.url}/`);
    try {
      const s = await until(page, (x) => live(x) && x.rows.length === 3, 10_000, 'the page to show the snapshot');
      assert.equal(s.status, 'degraded');
      assert.equal(s.bannerStatus, 'degraded');
      // The colour comes from the inline stylesheet, so this also proves its CSP hash works.
      const colour = await page.evaluate(() => getComputedStyle(document.querySelector('.badge-lg')!).color);
      assert.equal(colour, 'rgb(154, 103, 0)', 'degraded is amber');
      assert.match(await page.textContent('#summary') ?? '', /1 of 3 checks failing/);

      const [appRow, xssRow, dbRow] = s.rows;
      assert.deepEqual([appRow![0], xssRow![0], dbRow![0]], ['app', XSS_NAME, 'db']);
      assert.equal(appRow![1], `http${appUrl}/healthz`, 'kind tag, then the target');
      assert.equal(appRow![2], 'OK');
      assert.match(appRow![3]!, /^\d+(\.\d)? ms$/);
      assert.equal(appRow![4], 'HTTP 200');
      assert.equal(dbRow![1], `tcptcp://127.0.0.1:${closedPort}`);
      assert.equal(dbRow![2], 'FAIL');
      assert.match(dbRow![4]!, /ECONNREFUSED/);

      // The latency chart: one sparkline per check, with a line once two rounds are in.
      await waitFor(async () => (await page.locator('#checks svg polyline').count()) === 3, 5000, 'a latency line per check');
      const updated = await page.getAttribute('#updated', 'datetime');
      assert.ok(Math.abs(Date.parse(updated ?? '') - Date.now()) < 10_000, `last update ${updated}`);
      assert.equal(await page.textContent('#h-hostname'), hostname());
      assert.match(await page.textContent('#s-clients') ?? '', /^[1-9]\d*$/);
    } finally {
      await page.close();
    }
  });

  test('shows a check named <img src=x onerror=alert(1)> as text and opens no dialog', async () => {
    const { page, dialogs } = await open(`${service.url}/`);
    try {
      await until(page, (x) => live(x) && x.rows.some((row) => row[0] === XSS_NAME), 10_000, 'the check row');
      // Two more rounds re-render the table; a parsed <img> would have fired onerror by then.
      const id = (await shown(page)).eventId;
      await until(page, (x) => x.eventId !== id, 5000, 'another snapshot');
      assert.equal(await page.locator('#checks img').count(), 0, 'no element was made from stream text');
      assert.equal(await page.locator('img').count(), 0);
      assert.deepEqual(dialogs, []);
    } finally {
      await page.close();
    }
  });

  test('runs under its Content-Security-Policy with no console error and no request beyond 127.0.0.1', async () => {
    const head = await request(`${service.url}/`);
    const csp = String(head.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/);

    const { page, consoleErrors, pageErrors, requests, dialogs } = await open(`${service.url}/`);
    try {
      const first = await until(page, live, 10_000, 'the page to go live');
      await until(page, (x) => x.eventId !== first.eventId, 5000, 'a second snapshot');
      assert.deepEqual(await page.evaluate('window.cspViolations'), []);
      assert.deepEqual(consoleErrors, []);
      assert.deepEqual(pageErrors, []);
      assert.deepEqual(dialogs, []);
      const elsewhere = requests.filter((url) => !url.startsWith('data:') && new URL(url).hostname !== '127.0.0.1');
      assert.deepEqual(elsewhere, []);
      assert.ok(requests.includes(`${service.url}/events`), `the stream was requested: ${requests.join(', ')}`);
    } finally {
      await page.close();
    }
  });

  test('shows reconnecting when the service is killed, and live again when it is back on the same port', async () => {
    const port = await freePort();
    const env = { PORT: String(port), STATUS_INTERVAL_MS: '500', RETRY_MS: '500' };
    let current = await startService(env);
    const { page } = await open(`${current.url}/`);
    try {
      const before = await until(page, live, 10_000, 'the page to go live');
      assert.equal(await current.stop('SIGKILL'), null);
      await until(page, (x) => x.conn === 'reconnecting' || x.conn === 'offline', 5000, 'the page to notice');
      current = await startService(env);
      const back = await until(page, (x) => live(x) && bootOf(x.eventId) !== bootOf(before.eventId), 15_000, 'snapshots from the new process');
      assert.equal(back.status, 'up');
    } finally {
      await page.close();
      await current.stop();
    }
  });

  test('shows reconnecting on the done event of a shutdown, and picks up the restarted service', async () => {
    const port = await freePort();
    const env = { PORT: String(port), STATUS_INTERVAL_MS: '500', RETRY_MS: '1000' };
    let current = await startService(env);
    const { page } = await open(`${current.url}/`);
    try {
      const before = await until(page, live, 10_000, 'the page to go live');
      const exit = current.stop('SIGTERM');
      const during = await until(page, (x) => x.conn === 'reconnecting', 5000, 'reconnecting after done');
      assert.match(during.connText, /reconnecting/);
      assert.equal(await withDeadline(exit, 10_000, 'the service exiting'), 0);
      current = await startService(env);
      await until(page, (x) => live(x) && bootOf(x.eventId) !== bootOf(before.eventId), 15_000, 'snapshots from the new process');
    } finally {
      await page.close();
      await current.stop();
    }
  });

  test('passes its ?token= on to the stream when AUTH_TOKEN is set, and shows offline without it', async () => {
    const token = 's3cret/to+ken=';
    const secured = await startService({ AUTH_TOKEN: token, STATUS_INTERVAL_MS: '500' });
    const withToken = await open(`${secured.url}/?token=${encodeURIComponent(token)}`);
    const without = await open(`${secured.url}/`);
    try {
      const s = await until(withToken.page, live, 10_000, 'the page with the token to go live');
      assert.equal(s.status, 'up');
      assert.match(await withToken.page.textContent('#checks') ?? '', /No checks configured — reporting host and service only/);
      assert.ok(withToken.requests.includes(`${secured.url}/events?token=${encodeURIComponent(token)}`), withToken.requests.join(', '));

      // 401 makes the browser give up on that EventSource for good; the page says so and
      // keeps making new ones with a backoff.
      await until(without.page, (x) => x.conn === 'offline', 5000, 'offline without the token');
      await waitFor(() => without.requests.filter((url) => url === `${secured.url}/events`).length >= 2, 5000, 'a second attempt');
      assert.equal((await shown(without.page)).status, 'waiting');
    } finally {
      await withToken.page.close();
      await without.page.close();
      await secured.stop();
    }
  });

  test('works under the Nginx sub-path /status/', { skip: skipUnless(NGINX_BIN, 'nginx') }, async () => {
    const nginx = await startNginx({ upstreams: [service.port] });
    const { page, requests, consoleErrors } = await open(`${nginx.url}/status/`);
    try {
      const s = await until(page, (x) => live(x) && x.rows.length === 3, 10_000, 'the page under /status/ to go live');
      assert.equal(s.status, 'degraded');
      assert.ok(requests.includes(`${nginx.url}/status/events`), requests.join(', '));
      assert.deepEqual(consoleErrors, []);
    } finally {
      await page.close();
      await nginx.stop();
    }
  });
});
