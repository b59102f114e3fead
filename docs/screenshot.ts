// docs/screenshot.ts: renders the status page screenshots in docs/ (page.png light, page-dark.png,
// page-mobile.png at 375 px, page-degraded.png, page-stale.png). Run by hand, not by npm test:
//   node --import tsx docs/screenshot.ts [out-dir]
// It seeds 30 days of history into a fresh STATE_DIR through History's own API (what a service
// that ran for a month would hold), starts stand-in targets and the service on 127.0.0.1, and
// photographs the page in headless Chromium; then it breaks two targets and announces maintenance
// (degraded), and freezes the service with SIGSTOP (stale). Nothing leaves 127.0.0.1.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { History } from '../history.ts';
import { StateStore } from '../state-store.ts';
import type { CheckState } from '../status.ts';
import { startService, waitFor } from '../tests/helpers.ts';

const OUT = process.argv[2] ?? fileURLToPath(new URL('.', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PUBLISH_TOKEN = 'screenshot';
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

// Latency per endpoint (base ms, jitter ms), so that the charts have some shape.
const LATENCY: Record<string, [number, number]> = {
  '/healthz': [3, 4],
  '/payments/health': [28, 25],
  '/search/health': [70, 40],
};
let broken = false; // search answers slowly (degraded) while this is set

const app = http.createServer((req, res) => {
  const [base, jitter] = LATENCY[req.url ?? ''] ?? [1, 1];
  const slow = broken && req.url === '/search/health' ? 420 : 0;
  setTimeout(() => res.end('ok'), base + slow + Math.random() * jitter);
});
await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
// A stand-in Redis: a TCP port that accepts, until it is closed for the degraded picture.
const redis: Server = createServer((socket) => socket.destroy());
await new Promise<void>((resolve) => redis.listen(0, '127.0.0.1', resolve));
const redisPort = (redis.address() as AddressInfo).port;

const checks = [
  { name: 'api', url: `${appUrl}/healthz` },
  { name: 'payments', url: `${appUrl}/payments/health`, critical: true },
  { name: 'search', url: `${appUrl}/search/health`, degradedMs: 300 },
  { name: 'postgres', url: `tcp://127.0.0.1:${(app.address() as AddressInfo).port}` },
  { name: 'redis', url: `tcp://127.0.0.1:${redisPort}` },
];

const stateDir = mkdtempSync(join(tmpdir(), 'status-stream-screenshot-'));
writeFileSync(join(stateDir, 'config.json'), JSON.stringify({ checks }));
await seedHistory(stateDir);

const service = await startService({
  STATUS_INTERVAL_MS: '2000',
  HEARTBEAT_MS: '2000', // stale after 4 s of silence
  TITLE: 'Acme production',
  STATE_DIR: stateDir,
  CONFIG_FILE: join(stateDir, 'config.json'),
  PUBLISH_TOKEN,
});
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  await shoot(browser, 'page.png', { width: 1000, colorScheme: 'light' });
  await shoot(browser, 'page-dark.png', { width: 1000, colorScheme: 'dark' });
  await shoot(browser, 'page-mobile.png', { width: 375, colorScheme: 'light' });

  broken = true;
  await new Promise((resolve) => redis.close(resolve));
  const put = await fetch(`${service.url}/announcement`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${PUBLISH_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      text: 'Redis is being upgraded until 14:00 UTC; sessions may be slow.',
      level: 'warning',
      maintenance: true,
    }),
  });
  if (!put.ok) throw new Error(`PUT /announcement answered ${put.status}`);
  await shoot(browser, 'page-degraded.png', { width: 1000, colorScheme: 'light', until: 'degraded' });

  await shoot(browser, 'page-stale.png', { width: 1000, colorScheme: 'light', until: 'stale', height: 520 });
} finally {
  await browser.close();
  process.kill(service.pid, 'SIGCONT');
  await service.stop();
  app.close();
  redis.close();
  rmSync(stateDir, { recursive: true, force: true });
}

interface Shot {
  readonly width: number;
  readonly colorScheme: 'light' | 'dark';
  /** What to wait for after the page is live. */
  readonly until?: 'degraded' | 'stale';
  /** Only the top of the page, this tall; else the whole page. */
  readonly height?: number;
}

async function shoot(browser: Browser, name: string, shot: Shot): Promise<void> {
  const context = await browser.newContext({
    viewport: { width: shot.width, height: shot.height ?? 800 },
    colorScheme: shot.colorScheme,
  });
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${service.url}/`, { timeout: 10_000 });
    await waitFor(() => attr(page, '#conn', 'data-state', 'live'), 15_000, 'the page to go live');
    await waitFor(
      async () => (await page.locator('tbody.check .bars i[data-s="up"]').count()) > 100,
      10_000,
      'history bars',
    );
    await waitFor(
      async () => (await page.locator('#chart polyline.avg').count()) > 0,
      10_000,
      'the response-time chart',
    );
    if (shot.until === 'degraded') {
      await waitFor(() => attr(page, '#overall', 'data-status', 'degraded'), 20_000, 'degraded');
      await waitFor(
        async () => (await page.locator('tbody.check[data-state="degraded"]').count()) > 0,
        20_000,
        'a degraded check',
      );
    }
    if (shot.until === 'stale') {
      process.kill(service.pid, 'SIGSTOP');
      await waitFor(() => attr(page, '#overall', 'data-stale', 'true'), 20_000, 'stale');
    }
    await page.waitForTimeout(300); // the last snapshot's repaint
    const path = join(OUT, name);
    await page.screenshot({ path, fullPage: shot.height === undefined });
    if (errors.length) throw new Error(`${name}: the page logged errors: ${errors.join('; ')}`);
    console.log(`wrote ${path}`);
  } finally {
    await context.close();
  }
}

async function attr(page: Page, selector: string, name: string, value: string): Promise<boolean> {
  return (await page.getAttribute(selector, name)) === value;
}

// A month of one run a minute per check, with a few incidents in the last day: redis down for
// 25 min this morning, search slow for an hour, one payments latency spike.
async function seedHistory(dir: string): Promise<void> {
  const history = new History();
  const now = Date.now();
  const start = now - 30 * DAY_MS;
  const incidents: Array<{ check: string; state: CheckState; from: number; to: number; reason: string }> = [
    {
      check: 'redis',
      state: 'down',
      from: now - 7 * 3_600_000,
      to: now - 7 * 3_600_000 + 25 * MINUTE_MS,
      reason: 'connection refused',
    },
    {
      check: 'search',
      state: 'degraded',
      from: now - 3 * 3_600_000,
      to: now - 2 * 3_600_000,
      reason: 'slow: 412 ms > 300 ms',
    },
    {
      check: 'api',
      state: 'down',
      from: now - 9 * DAY_MS,
      to: now - 9 * DAY_MS + 40 * MINUTE_MS,
      reason: 'HTTP 502, expected 200-399',
    },
  ];
  for (const { name, url } of checks) {
    const [base, jitter] = LATENCY[new URL(url).pathname] ?? [0.4, 0.5];
    for (let at = start; at < now - MINUTE_MS; at += MINUTE_MS) {
      const incident = incidents.find((i) => i.check === name && at >= i.from && at < i.to);
      const daily = 1 + 0.35 * Math.sin(((at % DAY_MS) / DAY_MS) * 2 * Math.PI);
      let latency = (base + Math.random() * jitter) * daily;
      if (name === 'payments' && Math.abs(at - (now - 5 * 3_600_000)) < MINUTE_MS) latency = 2400;
      if (incident?.state === 'degraded') latency = 380 + Math.random() * 60;
      history.record(name, incident?.state ?? 'up', Math.round(latency * 10) / 10, at);
    }
  }
  for (const i of incidents.sort((a, b) => a.from - b.from)) {
    history.addTransition({
      time: new Date(i.from).toISOString(),
      check: i.check,
      from: 'up',
      to: i.state,
      reason: i.reason,
    });
    history.addTransition({
      time: new Date(i.from).toISOString(),
      check: null,
      from: 'up',
      to: 'degraded',
      reason: null,
    });
    history.addTransition({
      time: new Date(i.to).toISOString(),
      check: i.check,
      from: i.state,
      to: 'up',
      reason: null,
    });
    history.addTransition({
      time: new Date(i.to).toISOString(),
      check: null,
      from: 'degraded',
      to: 'up',
      reason: null,
    });
  }
  await StateStore.open(dir).save('history.json', history.jsonPieces());
}
