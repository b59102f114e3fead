// docs/screenshot.ts: renders docs/page.png, the status page as the README shows it.
// Run by hand (not part of npm test): node --import tsx docs/screenshot.ts [out.png]
// Starts a stand-in app with a few health endpoints, the service watching it (one check
// fails on purpose), lets a minute's worth of fast rounds fill the latency charts, and
// photographs the page in headless Chromium. Everything stays on 127.0.0.1.

import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, sleep, startService, waitFor } from '../tests/helpers.ts';

const OUT = process.argv[2] ?? fileURLToPath(new URL('./page.png', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const INTERVAL_MS = 250;
const ROUNDS = 60; // what the page's charts hold

// Latency per endpoint (base ms, jitter ms), so that the charts have some shape.
const LATENCY: Record<string, [number, number]> = { '/healthz': [2, 6], '/payments/health': [25, 40], '/search/health': [60, 90] };

const app = http.createServer((req, res) => {
  const [base, jitter] = LATENCY[req.url ?? ''] ?? [1, 1];
  setTimeout(() => res.end('ok'), base + Math.random() * jitter);
});
await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
const closedPort = await freePort();

const service = await startService({
  STATUS_INTERVAL_MS: String(INTERVAL_MS),
  CHECKS: [
    `api=${appUrl}/healthz`,
    `payments=${appUrl}/payments/health`,
    `search=${appUrl}/search/health`,
    `postgres=tcp://127.0.0.1:${(app.address() as AddressInfo).port}`,
    `redis=tcp://127.0.0.1:${closedPort}`,
  ].join(','),
});
const userDataDir = mkdtempSync(join(tmpdir(), 'status-stream-screenshot-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1000, height: 700 },
  colorScheme: process.env.COLOR_SCHEME === 'dark' ? 'dark' : 'light',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(`${service.url}/`, { timeout: 10_000 });
  await waitFor(async () => (await page.getAttribute('#conn', 'data-state')) === 'live', 10_000, 'the page to go live');
  await sleep(ROUNDS * INTERVAL_MS + 1000);
  await page.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
  await service.stop();
  app.close();
}
