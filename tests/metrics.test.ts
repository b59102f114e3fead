// /metrics (docs/operations.md): Prometheus text format 0.0.4, every family with # HELP and # TYPE,
// label values escaped, and counters that move with what happens.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort, type InProcess, openStream, request, startInProcess, waitFor } from './helpers.ts';

const FAMILIES = {
  sse_clients: 'gauge',
  sse_connections_total: 'counter',
  sse_events_sent_total: 'counter',
  sse_bytes_sent_total: 'counter',
  sse_clients_dropped_total: 'counter',
  status_check_rounds_total: 'counter',
  status_checks_total: 'counter',
  status_check_latency_seconds: 'gauge',
  status_up: 'gauge',
  process_resident_memory_bytes: 'gauge',
  process_start_time_seconds: 'gauge',
  nodejs_eventloop_delay_seconds: 'gauge',
} as const;

// A check name with every character that label escaping must handle.
const ODD_NAME = 'we"ird\\name';
let service: InProcess;
before(async () => {
  service = await startInProcess({
    STATUS_INTERVAL_MS: '200',
    CHECKS: `${ODD_NAME}=tcp://127.0.0.1:${await freePort()}`,
    LOG_LEVEL: 'error',
  });
});
after(() => service.close());

/** Parses the exposition text strictly enough to catch format errors. */
function parse(text: string): { types: Map<string, string>; helps: Set<string>; samples: Map<string, number> } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples = new Map<string, number>();
  assert.ok(text.endsWith('\n'));
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-z_]+) \S.*$/.exec(line))) helps.add(m[1]);
    else if ((m = /^# TYPE ([a-z_]+) (counter|gauge)$/.exec(line))) types.set(m[1], m[2]);
    else if (
      (m = /^([a-z_]+(?:\{(?:[a-z_]+="(?:[^"\\\n]|\\["\\n])*",?)+\})?) (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line))
    ) {
      const family = m[1].split('{')[0];
      assert.ok(types.has(family), `sample before its # TYPE: ${line}`);
      samples.set(m[1], Number(m[2]));
    } else assert.fail(`not a valid exposition line: ${JSON.stringify(line)}`);
  }
  return { types, helps, samples };
}

test('serves every family with # HELP and # TYPE in text format 0.0.4', async () => {
  await request(`${service.url}/status`);
  const reply = await request(`${service.url}/metrics`);
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const { types, helps } = parse(reply.body);
  for (const [family, type] of Object.entries(FAMILIES)) {
    assert.equal(types.get(family), type, family);
    assert.ok(helps.has(family), family);
  }
});

test('escapes backslash and double quote in label values', async () => {
  const { samples } = parse((await request(`${service.url}/metrics`)).body);
  assert.equal(samples.get('status_up{check="we\\"ird\\\\name"}'), 0);
  assert.ok(samples.has('status_checks_total{check="we\\"ird\\\\name",result="fail"}'));
});

test('sse_clients equals the open streams, and the counters move as streams come, get events and go', async () => {
  const read = async (): Promise<Map<string, number>> => parse((await request(`${service.url}/metrics`)).body).samples;
  const before = await read();
  const clients = await Promise.all(Array.from({ length: 3 }, () => openStream(`${service.url}/events`)));
  await Promise.all(clients.map((c) => c.waitForEvents(3, 10_000)));
  const during = await read();
  assert.equal(during.get('sse_clients'), 3);
  assert.equal(during.get('sse_connections_total')! - before.get('sse_connections_total')!, 3);
  assert.ok(during.get('sse_events_sent_total')! - before.get('sse_events_sent_total')! >= 9);
  // Bytes are at least the data the clients parsed.
  const received = clients.reduce((n, c) => n + Buffer.byteLength(c.raw), 0);
  assert.ok(during.get('sse_bytes_sent_total')! - before.get('sse_bytes_sent_total')! >= received);
  assert.ok(during.get('status_check_rounds_total')! >= before.get('status_check_rounds_total')! + 2);
  const fails = 'status_checks_total{check="we\\"ird\\\\name",result="fail"}';
  assert.ok(during.get(fails)! >= before.get(fails)! + 2);
  assert.equal(during.get('status_checks_total{check="we\\"ird\\\\name",result="ok"}'), 0);
  assert.ok(during.get('status_check_latency_seconds{check="we\\"ird\\\\name"}')! >= 0);
  assert.ok(during.get('process_resident_memory_bytes')! > 1e6);
  assert.ok(Math.abs(during.get('process_start_time_seconds')! - (Date.now() / 1000 - process.uptime())) < 5);
  assert.ok(during.get('nodejs_eventloop_delay_seconds')! >= 0);
  for (const c of clients) c.close();
  await waitFor(() => service.hub.size === 0, 5000, 'streams closed');
  const afterClose = await read();
  assert.equal(afterClose.get('sse_clients'), 0);
  assert.equal(afterClose.get('sse_clients_dropped_total{reason="slow"}'), 0);
});
