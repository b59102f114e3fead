// dns checks against a small DNS server written here with node:dgram (RFC 1035 wire format,
// UDP, answers from a fixed zone): A, AAAA, CNAME, MX and TXT, expect.answer, a name that
// does not exist, a name without records, a server that never answers, a slow one.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { type Outcome, PushLog, parseCheckDefinitions, runCheck } from '../checks/index.ts';
import { sleep, withDeadline } from './helpers.ts';

const DEFAULTS = { timeoutMs: 2000, intervalMs: 10_000 };
const CONTEXT = { pushes: new PushLog(), startedAtMs: Date.now() };

// RFC 1035 §3.2.2 TYPE values, and AAAA's from RFC 3596.
const TYPES = { A: 1, CNAME: 5, MX: 15, TXT: 16, AAAA: 28 } as const;
type TypeName = keyof typeof TYPES;

/** Each record's RDATA, already in wire format. */
const ZONE: Record<string, Partial<Record<TypeName, Buffer[]>>> = {
  'app.test': {
    A: [Buffer.from([10, 0, 0, 1]), Buffer.from([10, 0, 0, 2])],
    AAAA: [Buffer.from('20010db8000000000000000000000001', 'hex')],
    MX: [Buffer.concat([u16(10), encodeName('mail.app.test')])],
    // One TXT record of two character-strings, and another of one.
    TXT: [Buffer.concat([text('v=spf1 '), text('include:x -all')]), text('hello')],
  },
  'www.app.test': { CNAME: [encodeName('app.test')] },
  'empty.test': {},
  'slow.test': { A: [Buffer.from([10, 0, 0, 3])] },
};
const SILENT = 'silent.test';
const SLOW_MS = 250;

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function text(s: string): Buffer {
  return Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);
}

function encodeName(name: string): Buffer {
  return Buffer.concat([...name.split('.').map(text), Buffer.from([0])]);
}

const queries: Array<{ name: string; type: number }> = [];
const server = dgram.createSocket('udp4');
server.on('message', (msg, from) => {
  // Header (12 bytes), then the question: labels, QTYPE, QCLASS (RFC 1035 §4.1).
  const labels: string[] = [];
  let at = 12;
  while (msg[at] !== 0) {
    labels.push(msg.subarray(at + 1, at + 1 + msg[at]).toString());
    at += 1 + msg[at];
  }
  const questionEnd = at + 5;
  const name = labels.join('.').toLowerCase();
  const type = msg.readUInt16BE(at + 1);
  queries.push({ name, type });
  if (name === SILENT) return;
  const records = ZONE[name];
  const typeName = (Object.keys(TYPES) as TypeName[]).find((t) => TYPES[t] === type);
  const rdatas = records === undefined || typeName === undefined ? [] : (records[typeName] ?? []);
  const answers = rdatas.map((rdata) =>
    Buffer.concat([
      u16(0xc00c),
      u16(type),
      u16(1),
      Buffer.from([0, 0, 0, 60]),
      u16(rdata.length),
      rdata, // name: a pointer to the question's
    ]),
  );
  // QR, the query's RD, RA; RCODE 3 (NXDOMAIN) for a name not in the zone.
  const flags = 0x8000 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (records === undefined ? 3 : 0);
  const reply = Buffer.concat([
    msg.subarray(0, 2),
    u16(flags),
    u16(1),
    u16(answers.length),
    u16(0),
    u16(0),
    msg.subarray(12, questionEnd),
    ...answers,
  ]);
  setTimeout(() => server.send(reply, from.port, from.address), name === 'slow.test' ? SLOW_MS : 0);
});
let serverAddress = '';

before(async () => {
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  serverAddress = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

async function run(query: string, options: Record<string, unknown> = {}): Promise<Outcome> {
  const separator = query.includes('?') ? '&' : '?';
  const url = `dns://${query}${separator}server=${serverAddress}`;
  const { checks, problems } = parseCheckDefinitions(
    [{ name: 'dns', url, ...options }],
    'test.json',
    DEFAULTS,
    new Set(),
  );
  assert.deepEqual(problems, []);
  return withDeadline(runCheck(checks[0], CONTEXT), 10_000, `check of ${url}`);
}

function summary(outcome: Outcome): [string, string, string | null] {
  return [outcome.state, outcome.detail, outcome.reason];
}

test('a dns check asks the server it names for A records (the default type) and counts the answers', async () => {
  queries.length = 0;
  const outcome = await run('app.test');
  assert.deepEqual(summary(outcome), ['up', '2 answers', null]);
  assert.ok(outcome.latencyMs > 0);
  assert.deepEqual(queries, [{ name: 'app.test', type: TYPES.A }]);
});

test('expect.answer: one of the answers must equal it', async () => {
  assert.deepEqual(summary(await run('app.test?type=A', { expect: { answer: '10.0.0.2' } })), [
    'up',
    '2 answers',
    null,
  ]);
  assert.deepEqual(summary(await run('app.test?type=A', { expect: { answer: '10.0.0.9' } })), [
    'down',
    '2 answers',
    'answers are 10.0.0.1, 10.0.0.2, expected 10.0.0.9',
  ]);
});

test('AAAA answers compare as addresses, whatever their spelling', async () => {
  assert.deepEqual(summary(await run('app.test?type=AAAA', { expect: { answer: '2001:DB8:0::1' } })), [
    'up',
    '1 answer',
    null,
  ]);
  assert.deepEqual(summary(await run('app.test?type=aaaa', { expect: { answer: '2001:db8::2' } })), [
    'down',
    '1 answer',
    'answer is 2001:db8::1, expected 2001:db8::2',
  ]);
});

test('CNAME and MX answers compare as names: without case and trailing dot', async () => {
  assert.deepEqual(summary(await run('www.app.test?type=CNAME', { expect: { answer: 'APP.test.' } })), [
    'up',
    '1 answer',
    null,
  ]);
  assert.deepEqual(summary(await run('app.test?type=MX', { expect: { answer: 'mail.app.test' } })), [
    'up',
    '1 answer',
    null,
  ]);
  assert.deepEqual(summary(await run('app.test?type=MX', { expect: { answer: 'app.test' } })), [
    'down',
    '1 answer',
    'answer is mail.app.test, expected app.test',
  ]);
});

test('a TXT record is its strings joined', async () => {
  assert.deepEqual(summary(await run('app.test?type=TXT', { expect: { answer: 'v=spf1 include:x -all' } })), [
    'up',
    '2 answers',
    null,
  ]);
  assert.deepEqual(summary(await run('app.test?type=TXT', { expect: { answer: 'v=spf1 ' } })), [
    'down',
    '2 answers',
    'answers are v=spf1 include:x -all, hello, expected v=spf1 ',
  ]);
});

test('a name that does not exist and a name without records of the type are down', async () => {
  assert.deepEqual(summary(await run('missing.test')), ['down', 'ENOTFOUND', 'name not found']);
  assert.deepEqual(summary(await run('empty.test?type=MX')), ['down', 'ENODATA', 'no answers']);
});

test('a server that never answers is a timeout after timeoutMs, asked once', async () => {
  queries.length = 0;
  const outcome = await run(SILENT, { timeoutMs: 300 });
  assert.deepEqual(summary(outcome), ['down', 'timeout', 'no DNS answer within 300 ms']);
  assert.ok(outcome.latencyMs >= 290 && outcome.latencyMs < 3000, `latency ${outcome.latencyMs}`);
  await sleep(400);
  assert.equal(queries.filter((q) => q.name === SILENT).length, 1);
});

test('degradedMs makes a slow answer degraded', async () => {
  const outcome = await run('slow.test', { degradedMs: 50 });
  assert.equal(outcome.state, 'degraded');
  assert.match(outcome.reason ?? '', /^slow: \d+ ms > 50 ms$/);
  assert.deepEqual(summary(await run('slow.test', { degradedMs: 1500 })), ['up', '1 answer', null]);
});

test('a dns check without a server uses the system resolvers', async () => {
  const { checks } = parseCheckDefinitions(
    [{ name: 'sys', url: 'dns://name.invalid', timeoutMs: 1500 }],
    'test.json',
    DEFAULTS,
    new Set(),
  );
  assert.equal(checks[0].target, 'dns://name.invalid?type=A');
  // Whatever this machine's resolvers are (or none): down, and within the timeout.
  const outcome = await withDeadline(runCheck(checks[0], CONTEXT), 5000, 'system resolver check');
  assert.equal(outcome.state, 'down');
});
