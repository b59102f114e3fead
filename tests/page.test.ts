// tests/page.test.ts: the status page (page.html) in real headless Chromium against the real
// service: what it shows, that it runs under the service's Content-Security-Policy, that text
// from the service is never parsed as HTML, one stream shared by every tab of a browser, stale
// and offline states, the token hint and cookie, history bars and the response-time chart.
// Docs: README.md ("The status page"); the page's own header comment lists its query parameters.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { freePort, request, type Service, skipUnless, sleep, startService, waitFor, withDeadline } from './helpers.ts';
import { NGINX_BIN, startNginx } from './nginx-helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = skipUnless(CHROMIUM, 'chromium');
const XSS = '<img src=x onerror=alert(1)>';
const PUBLISH_TOKEN = 'publish-secret';
// The flags this machine's Chromium needs: no sandbox as root, and no background traffic to
// hosts a closed network refuses. A fresh profile comes with every launch.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Page-side code is passed as source text: tsx's esbuild wraps named functions in a
// __name() helper that does not exist in the page.
const SHOWN = `(() => {
  const q = (sel, root = document) => root.querySelector(sel);
  const text = (sel, root) => q(sel, root)?.textContent ?? '';
  const notice = q('#notice');
  const overall = q('#overall');
  if (!overall) return null;
  return {
    role: document.documentElement.getAttribute('data-role'),
    conn: q('#conn').getAttribute('data-state'),
    connText: text('#conn-text'),
    status: text('#status'),
    overall: overall.getAttribute('data-status'),
    stale: overall.getAttribute('data-stale'),
    notice: notice.hidden ? '' : text('#notice-text') + ' ' + text('#notice-more'),
    summary: text('#summary'),
    title: document.title,
    heading: text('#title'),
    host: q('#host').hidden ? '' : text('#host'),
    eventId: text('#event-id'),
    announcer: text('#announcer'),
    announcement: q('#announcement').hidden ? null
      : { level: q('#announcement').getAttribute('data-level'), text: text('#ann-text'),
          head: text('#announcement .head') },
    rows: [...document.querySelectorAll('tbody.check')].map((b) => ({
      name: text('.n', b), state: b.getAttribute('data-state'), word: text('.state-badge', b),
      target: text('.target', b), detail: text('.detail', b), latency: text('.lat', b),
      u24: text('.u24', b), u7: text('.u7', b), u30: text('.u30', b),
      bars: [...b.querySelectorAll('.bars i')]
        .map((i) => ({ up: 'u', degraded: 'g', down: 'x' })[i.getAttribute('data-s')] ?? 'n')
        .join(''),
    })),
    recent: [...document.querySelectorAll('#recent li')].map((li) => li.textContent.replace(/\\s+/g, ' ').trim()),
  };
})()`;
const RECORD_CSP_VIOLATIONS = `window.cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`;
// A browser without Web Locks (as on plain HTTP away from localhost: not a secure context).
const NO_WEB_LOCKS = `Object.defineProperty(Navigator.prototype, 'locks',
  { get: () => undefined, configurable: true });`;

interface Row {
  name: string;
  state: string | null;
  word: string;
  target: string;
  detail: string;
  latency: string;
  u24: string;
  u7: string;
  u30: string;
  bars: string;
}
interface Shown {
  role: string | null;
  conn: string | null;
  connText: string;
  status: string;
  overall: string | null;
  stale: string | null;
  notice: string;
  summary: string;
  title: string;
  heading: string;
  host: string;
  eventId: string;
  announcer: string;
  announcement: { level: string | null; text: string; head: string } | null;
  rows: Row[];
  recent: string[];
}

/** A page and everything it did that a test may want to rule out. */
interface Watched {
  readonly page: Page;
  readonly dialogs: string[];
  readonly consoleErrors: string[];
  readonly pageErrors: string[];
  readonly requests: string[];
}

describe('the status page in Chromium', { skip, timeout: 900_000 }, () => {
  let browser: Browser;
  let app: http.Server;
  let appUrl: string;
  let closedPort: number;
  let service: Service;
  // Whether the service under test has the routes a test needs (they land separately).
  let writeApi = false;
  let historyRoute = false;

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000, args: ARGS });
    // The app the checks watch: 200 on every path but /slow, which takes 1.2 s.
    app = http.createServer((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow'), 1200);
      else res.end('ok');
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    closedPort = await freePort(); // nothing listens: the TCP check is down
    service = await startService({
      STATUS_INTERVAL_MS: '500',
      TITLE: 'Acme <b>production</b>',
      PUBLISH_TOKEN,
      CHECKS: `app=${appUrl}/healthz,${XSS}=${appUrl}/,db=tcp://127.0.0.1:${closedPort}`,
    });
    writeApi = (await request(`${service.url}/publish`, { method: 'POST' })).status !== 404;
    historyRoute = (await request(`${service.url}/history`)).status === 200;
  });

  after(async () => {
    await browser?.close();
    await service?.stop();
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
  });

  async function newContext(
    options: { colorScheme?: 'light' | 'dark'; width?: number; initScript?: string } = {},
  ): Promise<BrowserContext> {
    const context = await browser.newContext({
      viewport: { width: options.width ?? 1000, height: 800 },
      colorScheme: options.colorScheme ?? 'light',
    });
    // Runs before the page's own script (injected by the browser, so outside the CSP).
    await context.addInitScript(RECORD_CSP_VIOLATIONS);
    if (options.initScript) await context.addInitScript(options.initScript);
    return context;
  }

  async function open(context: BrowserContext, url: string, waitUntil: 'load' | 'commit' = 'load'): Promise<Watched> {
    const page = await context.newPage();
    const watched: Watched = { page, dialogs: [], consoleErrors: [], pageErrors: [], requests: [] };
    page.on('dialog', (dialog) => {
      watched.dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (message.type() === 'error') watched.consoleErrors.push(message.text());
    });
    page.on('pageerror', (err) => watched.pageErrors.push(String(err)));
    page.on('request', (req) => watched.requests.push(req.url()));
    await page.goto(url, { timeout: 10_000, waitUntil });
    return watched;
  }

  function shown(page: Page): Promise<Shown> {
    return page.evaluate(SHOWN) as Promise<Shown>;
  }

  /** Polls what the page shows until `condition` holds; the error says what it showed. */
  async function until(page: Page, condition: (s: Shown) => boolean, ms: number, what: string): Promise<Shown> {
    let last: Shown | undefined;
    try {
      await waitFor(
        async () => {
          last = await shown(page);
          return last !== null && condition(last);
        },
        ms,
        what,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; the page showed ${JSON.stringify(last)}`);
    }
    return last!;
  }

  const live = (s: Shown): boolean => s.conn === 'live' && s.status !== 'waiting' && s.stale === 'false';
  const bootOf = (id: string): string => id.slice(0, id.lastIndexOf('-'));

  /** A request to the write API; resolves with the status. */
  async function write(method: string, url: string, body?: unknown): Promise<number> {
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${PUBLISH_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    await res.arrayBuffer();
    return res.status;
  }

  async function streamsOpen(target: Service): Promise<number> {
    const metrics = (await request(`${target.url}/metrics`)).body;
    const match = /^sse_clients (\d+)$/m.exec(metrics);
    assert.ok(match, 'sse_clients in /metrics');
    return Number(match[1]);
  }

  test("shows the title, the overall status in words and colour, and each check's state and reason", async () => {
    const context = await newContext();
    try {
      const { page } = await open(context, `${service.url}/`);
      const s = await until(page, (x) => live(x) && x.rows.length === 3, 10_000, 'the page to show the snapshot');
      assert.equal(s.status, 'degraded');
      assert.equal(s.overall, 'degraded');
      assert.equal(s.heading, 'Acme <b>production</b>', 'TITLE is the heading, as text');
      assert.equal(s.title, 'DEGRADED · Acme <b>production</b>');
      assert.match(s.host, /^host \S+$/, 'the host name is labelled as the host');
      assert.equal(s.summary, '1 of 3 checks down');
      // The colour comes from the inline stylesheet, so this also proves its CSP hash works.
      const colour = await page.evaluate(() => getComputedStyle(document.querySelector('.badge-lg')!).color);
      assert.equal(colour, 'rgb(154, 103, 0)', 'degraded is amber');

      const [appRow, xssRow, dbRow] = s.rows;
      assert.deepEqual(
        s.rows.map((r) => r.name),
        ['app', XSS, 'db'],
      );
      assert.equal(appRow!.state, 'up');
      assert.equal(appRow!.word, '✓Up', 'state in a word and an icon, not by colour alone');
      assert.equal(appRow!.target, `http${appUrl}/healthz`, 'kind tag, then the target');
      assert.match(appRow!.latency, /^\d+(\.\d)? ms$/);
      assert.equal(appRow!.detail, 'HTTP 200');
      assert.equal(xssRow!.state, 'up');
      assert.equal(dbRow!.state, 'down');
      assert.equal(dbRow!.word, '✕Down');
      assert.equal(dbRow!.target, `tcptcp://127.0.0.1:${closedPort}`);
      assert.match(dbRow!.detail, /^connection refused · since \d\d:\d\d:\d\d$/, 'the reason and since when');
      for (const row of s.rows) assert.match(row.u24, /^(–|\d+(\.\d\d)? %)$/);
      const updated = await page.getAttribute('#updated', 'datetime');
      assert.ok(Math.abs(Date.parse(updated ?? '') - Date.now()) < 10_000, `last update ${updated}`);
    } finally {
      await context.close();
    }
  });

  test('runs under its Content-Security-Policy with no console error and no request beyond 127.0.0.1', async () => {
    const head = await request(`${service.url}/`);
    const csp = String(head.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/);

    const context = await newContext();
    try {
      const { page, consoleErrors, pageErrors, requests, dialogs } = await open(context, `${service.url}/`);
      const first = await until(page, live, 10_000, 'the page to go live');
      await until(page, (x) => x.eventId !== first.eventId, 5000, 'a second snapshot');
      // The tooltip and the chart's range buttons write styles through the CSSOM.
      await page.hover('tbody.check .bars', { timeout: 5000 }).catch(() => undefined);
      await page.click('button[data-range="1h"]');
      await sleep(300);
      assert.deepEqual(await page.evaluate('window.cspViolations'), []);
      assert.deepEqual(consoleErrors, []);
      assert.deepEqual(pageErrors, []);
      assert.deepEqual(dialogs, []);
      const elsewhere = requests.filter((url) => !url.startsWith('data:') && new URL(url).hostname !== '127.0.0.1');
      assert.deepEqual(elsewhere, []);
      assert.ok(requests.includes(`${service.url}/events`), `the stream was requested: ${requests.join(', ')}`);
    } finally {
      await context.close();
    }
  });

  test('shows check names, reasons, the title, announcements and app events as text and opens no dialog', async (t) => {
    if (!writeApi) return t.skip('this service has no write API yet (POST /publish answers 404)');
    const context = await newContext();
    try {
      const { page, dialogs, consoleErrors } = await open(context, `${service.url}/?events=deploy`);
      await until(page, (x) => live(x) && x.rows.length === 3, 10_000, 'the page to go live');
      const put = await write('PUT', `${service.url}/announcement`, {
        text: `Maintenance ${XSS} <script>alert(2)</script>`,
        level: 'critical',
        maintenance: true,
      });
      assert.ok(put < 300, `PUT /announcement answered ${put}`);
      assert.equal(await write('POST', `${service.url}/publish`, { event: 'deploy', data: { version: XSS } }), 202);
      const s = await until(
        page,
        (x) => x.announcement !== null && x.recent.some((r) => r.includes('deploy')),
        10_000,
        'the announcement and the app event',
      );
      assert.equal(s.announcement!.text, `Maintenance ${XSS} <script>alert(2)</script>`);
      assert.equal(s.announcement!.level, 'critical');
      assert.match(s.announcement!.head, /Critical.*Maintenance/);
      assert.ok(
        s.recent.some((r) => r.includes(`{"version":"${XSS}"}`)),
        s.recent.join(' | '),
      );
      // More snapshots re-render everything; a parsed <img> would have fired onerror by then.
      await until(page, (x) => x.eventId !== s.eventId, 5000, 'another snapshot');
      assert.equal(
        await page.locator('img, script:not(:first-of-type)').count(),
        0,
        'no element was made from service text',
      );
      assert.equal(await page.locator('body script').count(), 1);
      assert.deepEqual(dialogs, []);
      assert.deepEqual(consoleErrors, []);
    } finally {
      await write('DELETE', `${service.url}/announcement`).catch(() => undefined);
      await context.close();
    }
  });

  test('eight tabs of one browser are all live over HTTP/1.1 while the service holds one stream', async () => {
    const own = await startService({ STATUS_INTERVAL_MS: '500', CHECKS: `app=${appUrl}/healthz` });
    const context = await newContext();
    try {
      const pages: Page[] = [];
      for (let i = 0; i < 8; i++) pages.push((await open(context, `${own.url}/`)).page);
      const views = await Promise.all(pages.map((page, i) => until(page, live, 15_000, `tab ${i + 1} to go live`)));
      // Every tab keeps getting new snapshots, not just the first one.
      await Promise.all(
        pages.map((page, i) =>
          until(page, (x) => live(x) && x.eventId !== views[i]!.eventId, 5000, `tab ${i + 1} to update`),
        ),
      );
      const roles = (await Promise.all(pages.map((page) => shown(page)))).map((s) => s.role);
      assert.deepEqual(roles.filter((r) => r === 'owner').length, 1, `roles: ${roles.join(', ')}`);
      assert.equal(await streamsOpen(own), 1);
    } finally {
      await context.close();
      await own.stop();
    }
  });

  test('with sharing turned off (?share=0) a seventh tab cannot connect until another tab closes', async () => {
    // The control for the test above: it proves the browser's six-connection limit is real here.
    const own = await startService({ STATUS_INTERVAL_MS: '500', CHECKS: `app=${appUrl}/healthz` });
    const context = await newContext();
    try {
      const pages: Page[] = [];
      for (let i = 0; i < 6; i++) {
        const { page } = await open(context, `${own.url}/?share=0`);
        await until(page, live, 10_000, `tab ${i + 1} to go live`);
        pages.push(page);
      }
      await waitFor(async () => (await streamsOpen(own)) === 6, 5000, 'six streams');
      const seventh = await context.newPage();
      let loaded = false;
      const loading = seventh.goto(`${own.url}/?share=0`, { timeout: 60_000 }).then(() => {
        loaded = true;
      });
      // Even its page request waits for one of the six connections.
      await sleep(3000);
      assert.equal(loaded, false, 'the seventh tab stalls');
      assert.equal(await streamsOpen(own), 6);
      await pages[0]!.close();
      await withDeadline(loading, 30_000, 'the seventh tab to load');
      await until(seventh, live, 10_000, 'the seventh tab to go live once a connection is free');
    } finally {
      await context.close();
      await own.stop();
    }
  });

  for (const mode of ['Web Locks', 'a lease over BroadcastChannel (no Web Locks)'] as const) {
    test(`another tab takes the stream over within 2 s when the owner tab closes, elected by ${mode}`, async () => {
      const own = await startService({ STATUS_INTERVAL_MS: '500', CHECKS: `app=${appUrl}/healthz` });
      const context = await newContext({ initScript: mode === 'Web Locks' ? undefined : NO_WEB_LOCKS });
      try {
        const pages: Page[] = [];
        for (let i = 0; i < 3; i++) pages.push((await open(context, `${own.url}/`)).page);
        await Promise.all(pages.map((page, i) => until(page, live, 10_000, `tab ${i + 1} to go live`)));
        await waitFor(
          async () => (await Promise.all(pages.map((p) => shown(p)))).filter((s) => s.role === 'owner').length === 1,
          5000,
          'one owner',
        );
        const roles = await Promise.all(pages.map((p) => shown(p)));
        const owner = roles.findIndex((s) => s.role === 'owner');
        assert.equal(await streamsOpen(own), 1);
        const rest = pages.filter((_, i) => i !== owner);
        const closedAt = Date.now();
        await pages[owner]!.close();
        await waitFor(
          async () => (await Promise.all(rest.map((p) => shown(p)))).some((s) => s.role === 'owner'),
          10_000,
          'another tab to take the stream over',
        );
        // Timed by the new owner itself, so a slow test process does not count.
        const since = await Promise.all(
          rest.map((p) => p.evaluate('document.documentElement.getAttribute("data-owner-since")')),
        );
        const tookMs = Math.max(...since.map(Number).filter((ms) => ms > 0)) - closedAt;
        // And the stream really moved: both remaining tabs see new snapshots, over one stream.
        const now = await Promise.all(rest.map((p) => shown(p)));
        await Promise.all(
          rest.map((page, i) => until(page, (x) => live(x) && x.eventId !== now[i]!.eventId, 5000, 'new snapshots')),
        );
        await waitFor(async () => (await streamsOpen(own)) === 1, 5000, 'one stream after the takeover');
        assert.equal((await Promise.all(rest.map((p) => shown(p)))).filter((s) => s.role === 'owner').length, 1);
        assert.ok(tookMs <= 2000, `took over in ${tookMs} ms`);
      } finally {
        await context.close();
        await own.stop();
      }
    });
  }

  test('shows stale, in grey and since when, while the service is frozen, and live again when it resumes', async () => {
    const own = await startService({ STATUS_INTERVAL_MS: '500', HEARTBEAT_MS: '500', CHECKS: `app=${appUrl}/healthz` });
    const context = await newContext();
    let stopped = false;
    try {
      const { page, consoleErrors } = await open(context, `${own.url}/`);
      const before = await until(page, live, 10_000, 'the page to go live');
      process.kill(own.pid, 'SIGSTOP');
      stopped = true;
      const frozenAt = Date.now();
      const stale = await until(page, (x) => x.stale === 'true', 10_000, 'stale');
      assert.ok(Date.now() - frozenAt >= 900, 'not before twice the interval and heartbeat');
      assert.match(stale.notice, /^Stale: no update since \d\d:\d\d:\d\d\. /);
      assert.equal(stale.status, 'up', 'the last known status stays, greyed');
      assert.match(stale.title, /^STALE · /);
      const grey = await page.evaluate(() => getComputedStyle(document.querySelector('.badge-lg')!).color);
      assert.equal(grey, 'rgb(110, 119, 129)', 'the status card is grey');
      await until(page, (x) => x.announcer.startsWith('Stale'), 2000, 'the stale state announced');
      process.kill(own.pid, 'SIGCONT');
      stopped = false;
      const back = await until(page, (x) => live(x) && x.eventId !== before.eventId, 15_000, 'live again');
      assert.equal(back.notice, '');
      assert.equal(back.announcer, 'Live again.');
      assert.deepEqual(consoleErrors, []);
    } finally {
      if (stopped) process.kill(own.pid, 'SIGCONT');
      await context.close();
      await own.stop();
    }
  });

  test('shows reconnecting when the service is killed, and live again when it is back on the same port', async () => {
    const port = await freePort();
    const env = { PORT: String(port), STATUS_INTERVAL_MS: '500', RETRY_MS: '500' };
    let current = await startService(env);
    const context = await newContext();
    try {
      const { page } = await open(context, `${current.url}/`);
      const before = await until(page, live, 10_000, 'the page to go live');
      assert.equal(await current.stop('SIGKILL'), null);
      const lost = await until(
        page,
        (x) => x.conn === 'reconnecting' || x.conn === 'offline',
        5000,
        'the page to notice',
      );
      assert.match(lost.notice, /Reconnecting|Offline|Stale/, 'as visible as the status');
      current = await startService(env);
      const back = await until(
        page,
        (x) => live(x) && bootOf(x.eventId) !== bootOf(before.eventId),
        15_000,
        'snapshots from the new process',
      );
      assert.equal(back.status, 'up');
    } finally {
      await context.close();
      await current.stop();
    }
  });

  test('shows reconnecting on the done event of a shutdown, and picks up the restarted service', async () => {
    const port = await freePort();
    const env = { PORT: String(port), STATUS_INTERVAL_MS: '500', RETRY_MS: '1000' };
    let current = await startService(env);
    const context = await newContext();
    try {
      const { page } = await open(context, `${current.url}/`);
      const before = await until(page, live, 10_000, 'the page to go live');
      const exit = current.stop('SIGTERM');
      const during = await until(page, (x) => x.conn === 'reconnecting', 5000, 'reconnecting after done');
      assert.match(during.connText, /reconnecting/);
      assert.equal(await withDeadline(exit, 10_000, 'the service exiting'), 0);
      current = await startService(env);
      await until(
        page,
        (x) => live(x) && bootOf(x.eventId) !== bootOf(before.eventId),
        15_000,
        'snapshots from the new process',
      );
    } finally {
      await context.close();
      await current.stop();
    }
  });

  describe('with AUTH_TOKEN set', () => {
    const token = 's3cret/to+ken=';
    let secured: Service;
    before(async () => {
      secured = await startService({ AUTH_TOKEN: token, STATUS_INTERVAL_MS: '500' });
    });
    after(async () => {
      await secured?.stop();
    });

    test('says that a token is needed, and how to give it, when the stream answers 401', async () => {
      const context = await newContext();
      try {
        const { page, requests } = await open(context, `${secured.url}/`);
        const s = await until(page, (x) => x.conn === 'auth', 10_000, 'the token hint');
        assert.equal(s.connText, 'token needed');
        assert.match(
          s.notice,
          /This status needs a token\. Open this page once as http:\/\/127\.0\.0\.1:\d+\/\?token=<your token>/,
        );
        assert.equal(s.status, 'waiting');
        assert.match(s.title, /^TOKEN NEEDED · /);
        // It keeps trying, so a cookie set by another tab is picked up.
        await waitFor(
          () => requests.filter((url) => url === `${secured.url}/events`).length >= 2,
          5000,
          'a second attempt',
        );
      } finally {
        await context.close();
      }
    });

    test('trades ?token= for a cookie: the address bar and every later request are without it', async () => {
      const context = await newContext();
      try {
        const { page, requests } = await open(
          context,
          `${secured.url}/?token=${encodeURIComponent(token)}&events=deploy`,
        );
        const s = await until(page, live, 10_000, 'the page with the token to go live');
        assert.equal(s.status, 'up');
        assert.equal(page.url(), `${secured.url}/?events=deploy`, 'the token left the address bar, the rest stayed');
        const cookies = await context.cookies(secured.url);
        assert.equal(cookies.length, 1, JSON.stringify(cookies));
        assert.equal(cookies[0]!.httpOnly, true);
        assert.equal(cookies[0]!.sameSite, 'Strict');
        const later = requests.slice(1);
        assert.ok(
          later.some((url) => url.startsWith(`${secured.url}/events`)),
          later.join(', '),
        );
        assert.deepEqual(
          later.filter((url) => url.includes('token')),
          [],
          'no request after the page carries the token',
        );
        // A second tab opened without the token is let in by the cookie.
        const second = await open(context, `${secured.url}/`);
        await until(second.page, live, 10_000, 'a second tab without the token');
      } finally {
        await context.close();
      }
    });
  });

  test("shows bars and 24 h uptime from the service's history on first load, before any live event", async (t) => {
    if (!historyRoute) return t.skip('this service has no GET /history yet');
    const own = await startService({
      STATUS_INTERVAL_MS: '200',
      CHECKS: `app=${appUrl}/healthz,db=tcp://127.0.0.1:${closedPort}`,
    });
    const context = await newContext();
    try {
      // A few rounds of history, then a page whose stream is blocked: all it shows is history.
      await waitFor(
        async () =>
          JSON.parse((await request(`${own.url}/history?range=1h&buckets=1`)).body).checks.every(
            (c: { buckets: { up: number; down: number }[] }) => c.buckets[0]!.up + c.buckets[0]!.down >= 3,
          ),
        10_000,
        'history',
      );
      const page = await context.newPage();
      await page.route('**/events*', (route) => route.abort());
      await page.goto(`${own.url}/`);
      const s = await until(
        page,
        (x) => x.rows.length === 2 && x.rows.every((r) => /[ux]$/.test(r.bars)),
        10_000,
        'bars from history',
      );
      assert.equal(s.status, 'waiting', 'no snapshot came');
      const [appRow, dbRow] = s.rows;
      assert.equal(appRow!.name, 'app');
      assert.equal(appRow!.bars.length, 48);
      assert.match(appRow!.bars, /^n*u$/, 'no data, then up in the latest slice');
      assert.match(dbRow!.bars, /^n*x$/);
      assert.equal(appRow!.u24, '100 %');
      assert.equal(dbRow!.u24, '0.00 %');
      // The response-time chart comes from history too.
      await waitFor(
        async () => (await page.locator('#chart polyline.avg, #chart circle.pt').count()) > 0,
        5000,
        'a latency line',
      );
    } finally {
      await context.close();
      await own.stop();
    }
  });

  test('draws bars patterned by state with a tooltip, and a chart axis that one spike does not stretch', async () => {
    // The page's own rendering, fed a fixed history: one slice down, one degraded, one spike.
    const now = Date.now();
    const history = (range: string, count: number, rangeMs: number): unknown => ({
      range,
      buckets: count,
      from: new Date(now - rangeMs).toISOString(),
      to: new Date(now).toISOString(),
      checks: ['app', XSS, 'db'].map((name) => ({
        name,
        uptime: 99.5,
        buckets: Array.from({ length: count }, (_, i) => {
          const down = i === count - 3 ? 2 : 0;
          const degraded = i === count - 5 ? 1 : 0;
          const avg = i === count - 10 ? 5000 : 20 + (i % 7);
          return i < 4
            ? {
                start: new Date(now - rangeMs + (i * rangeMs) / count).toISOString(),
                up: 0,
                degraded: 0,
                down: 0,
                latencyMs: { min: null, avg: null, max: null },
              }
            : {
                start: new Date(now - rangeMs + (i * rangeMs) / count).toISOString(),
                up: 10 - down - degraded,
                degraded,
                down,
                latencyMs: { min: avg / 2, avg, max: avg * 2 },
              };
        }),
      })),
      transitions: [
        { time: new Date(now - 60_000).toISOString(), check: XSS, from: 'up', to: 'down', reason: `<b>${XSS}</b>` },
      ],
    });
    const context = await newContext();
    try {
      const page = await context.newPage();
      await page.route('**/history?*', (route) => {
        const q = new URL(route.request().url()).searchParams;
        const range = q.get('range') ?? '24h';
        const count = Number(q.get('buckets') ?? 90);
        const rangeMs = { '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 }[range] ?? 86_400_000;
        return route.fulfill({ contentType: 'application/json', body: JSON.stringify(history(range, count, rangeMs)) });
      });
      const dialogs: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.goto(`${service.url}/`);
      // The first snapshot alone already draws 48 bars, all but one without data: wait for the
      // history's down slice too, which can arrive after it on a busy machine.
      const s = await until(
        page,
        (x) => live(x) && x.rows.length === 3 && x.rows[0]!.bars.length === 48 && x.rows[0]!.bars.includes('x'),
        10_000,
        'bars drawn from the history',
      );
      // A live snapshot after the history's end moves the window on by one slice.
      assert.match(s.rows[0]!.bars, /^n{3,4}u+guxu+$/, 'no data, up, degraded, down, in their slices');
      const pattern = (state: string): Promise<string> =>
        page.evaluate(
          `getComputedStyle(document.querySelector('tbody.check .bars i[data-s="${state}"]')).backgroundImage`,
        ) as Promise<string>;
      assert.match(await pattern('down'), /repeating-linear-gradient/, 'down is hatched');
      assert.match(await pattern('degraded'), /radial-gradient/, 'degraded is dotted');
      assert.equal(await pattern('up'), 'none');

      // A live snapshot may move the bars on by one slice between finding the down bar and
      // the mouse arriving there: hover again until the tip is the down bar's (3 s at most).
      // A slice that began yesterday (the test run just after midnight) names its day first.
      const expected =
        /^app\n(?:[A-Z][a-z]{2} \d{1,2} )?\d\d:\d\d–\d\d:\d\d\n8 up · 0 degraded · 2 down\nuptime 80\.00 % · avg 2\d ms$/;
      let tip: string | null = null;
      for (const end = Date.now() + 3000; Date.now() < end && !expected.test(tip ?? ''); ) {
        await page.hover('tbody.check .bars i[data-s="down"]');
        tip = await page.textContent('#tip');
      }
      assert.match(tip ?? '', expected);
      assert.equal(await page.isVisible('#tip'), true);

      // The axis stops near 1.5 x the 95th percentile, far below the 5 s spike, which is marked.
      const labels = await page.locator('#chart text.label').allTextContents();
      const top = labels.filter((l) => l.endsWith('ms') || l.endsWith(' s')).at(-1) ?? '';
      assert.match(top, /^\d+ ms$/, `the axis ends in ms, not at the spike: ${labels.join(', ')}`);
      // The history has one spike. The live checks of the app add their latencies to the
      // newest slice, and on a busy machine one may land above the axis too: at most that one.
      const clips = await page.locator('#chart path.clip title').allTextContents();
      assert.equal(clips.filter((t) => /average 5 s, above the axis/.test(t)).length, 1, clips.join(' | '));
      assert.ok(clips.length <= 2, `slices above the axis: ${clips.join(' | ')}`);
      const note = clips.length === 1 ? /1 slice is above the axis/ : /2 slices are above the axis/;
      assert.match((await page.textContent('#chart-note')) ?? '', note);
      assert.ok(
        s.recent.some((r) => r.includes(`<b>${XSS}</b>`)),
        `transitions as text: ${s.recent.join(' | ')}`,
      );
      assert.equal(await page.locator('img, b').count(), 0);
      assert.deepEqual(dialogs, []);
    } finally {
      await context.close();
    }
  });

  test('shows a snapshot without states, uptime or title, with no history route, and throws nothing', async () => {
    // The first snapshot shape: ok but no state, no uptime, no service.title or intervals.
    const snapshot = {
      status: 'degraded',
      time: new Date().toISOString(),
      checks: [
        { name: 'web', kind: 'http', target: 'http://web/', ok: true, latencyMs: 3.2, detail: 'HTTP 200' },
        { name: 'db', kind: 'tcp', target: 'tcp://db:5432', ok: false, latencyMs: 1.1, detail: 'ECONNREFUSED' },
      ],
      host: {
        hostname: '3f2a9c1b7d2e',
        loadavg: [0.1, 0.2, 0.3],
        memTotalBytes: 1024,
        memFreeBytes: 512,
        uptimeSeconds: 60,
      },
      service: { version: '0.1.0', uptimeSeconds: 5, clients: 1, rssBytes: 1 << 20, eventLoopDelayMs: 0.4 },
    };
    const context = await newContext();
    try {
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(String(err)));
      await page.route('**/history?*', (route) => route.fulfill({ status: 404, body: '{"error":"not found"}' }));
      await page.route('**/events*', (route) =>
        route.fulfill({
          contentType: 'text/event-stream',
          body: `retry: 60000\n\nid: old-1\ndata: ${JSON.stringify(snapshot)}\n\n`,
        }),
      );
      await page.goto(`${service.url}/`);
      const s = await until(page, (x) => x.rows.length === 2, 10_000, 'the old snapshot');
      assert.equal(s.status, 'degraded');
      assert.equal(s.heading, 'status-stream');
      assert.equal(s.host, 'host 3f2a9c1b7d2e', 'a container id is labelled as the host, not used as a name');
      assert.deepEqual(
        s.rows.map((r) => [r.name, r.state, r.detail, r.u24, r.u7, r.u30]),
        [
          ['web', 'up', 'HTTP 200', '–', '–', '–'],
          ['db', 'down', 'ECONNREFUSED', '–', '–', '–'],
        ],
      );
      assert.match(s.rows[1]!.bars, /^n{47}x$/, 'bars from what this tab saw');
      assert.equal(s.summary, '1 of 2 checks down');
      assert.deepEqual(pageErrors, []);
    } finally {
      await context.close();
    }
  });

  test('announces a change of the overall status and lists the transition as it happens', async (t) => {
    let healthy = true;
    const flaky = http.createServer((_req, res) => {
      res.statusCode = healthy ? 200 : 503;
      res.end();
    });
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    const own = await startService({
      STATUS_INTERVAL_MS: '300',
      CHECKS: `flaky=http://127.0.0.1:${(flaky.address() as AddressInfo).port}/,app=${appUrl}/healthz`,
    });
    const context = await newContext();
    try {
      const { page } = await open(context, `${own.url}/`);
      await until(page, (x) => live(x) && x.status === 'up', 10_000, 'up');
      healthy = false;
      const s = await until(page, (x) => x.status === 'degraded', 10_000, 'degraded');
      await until(page, (x) => x.announcer === 'Overall status is now degraded, was up.', 2000, 'the announcement');
      assert.equal(s.rows[0]!.state, 'down');
      assert.match(s.rows[0]!.detail, /HTTP 503/);
      if (!historyRoute)
        return t.skip('no change events or history on this service yet: the transition list is not checked');
      const listed = await until(
        page,
        (x) => x.recent.some((r) => /^flaky ✓Up → ✕Down/.test(r)),
        5000,
        'the transition listed',
      );
      assert.ok(
        listed.recent.some((r) => /^Overall ✓Up → !Degraded/.test(r)),
        listed.recent.join(' | '),
      );
    } finally {
      healthy = true;
      await context.close();
      await own.stop();
      flaky.close();
    }
  });

  test('follows prefers-color-scheme and reads at 375 px wide without sideways scrolling', async () => {
    const dark = await newContext({ colorScheme: 'dark' });
    const narrow = await newContext({ width: 375 });
    try {
      const { page } = await open(dark, `${service.url}/`);
      await until(page, live, 10_000, 'the dark page to go live');
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(13, 17, 23)');
      const small = (await open(narrow, `${service.url}/`)).page;
      await until(small, (x) => live(x) && x.rows.length === 3, 10_000, 'the narrow page to go live');
      const width = await small.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375, `the page is ${width} px wide`);
      // Each uptime figure carries its label when the table's header is hidden.
      assert.equal(
        await small.evaluate(() => getComputedStyle(document.querySelector('td.u7')!, '::before').content),
        '"7 d "',
      );
    } finally {
      await dark.close();
      await narrow.close();
    }
  });

  test('works under the Nginx sub-path /status/', { skip: skipUnless(NGINX_BIN, 'nginx') }, async () => {
    const nginx = await startNginx({ upstreams: [service.port] });
    const context = await newContext();
    try {
      const { page, requests, consoleErrors } = await open(context, `${nginx.url}/status/`);
      const s = await until(page, (x) => live(x) && x.rows.length === 3, 10_000, 'the page under /status/ to go live');
      assert.equal(s.status, 'degraded');
      assert.equal(s.role, 'owner');
      assert.ok(requests.includes(`${nginx.url}/status/events`), requests.join(', '));
      assert.ok(
        requests.some((url) => url.startsWith(`${nginx.url}/status/history?`)),
        requests.join(', '),
      );
      // The lock and the channel are named by the path: a second tab under /status/ shares the stream.
      const second = await open(context, `${nginx.url}/status/`);
      const other = await until(second.page, live, 10_000, 'a second tab under /status/');
      assert.equal(other.role, 'follower');
      assert.deepEqual(consoleErrors, []);
    } finally {
      await context.close();
      await nginx.stop();
    }
  });
});
