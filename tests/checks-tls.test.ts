// https checks against local servers with certificates made here by the openssl CLI: trusted
// through NODE_EXTRA_CA_CERTS, self-signed, for another host, expiring in 5 days, expired;
// certMinDays, insecure, certExpiresAt, and no request sent before the certificate is accepted.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type Outcome, PushLog, parseCheckDefinitions, runCheck } from '../checks/index.ts';
import { ROOT, skipUnless, withDeadline } from './helpers.ts';

const OPENSSL = '/usr/bin/openssl';
const skip = skipUnless(OPENSSL, 'the openssl CLI');
const DAY_MS = 24 * 3600 * 1000;
const DEFAULTS = { timeoutMs: 5000, intervalMs: 10_000 };
const CONTEXT = { pushes: new PushLog(), startedAtMs: Date.now() };

let dir = '';
/** Leaf certificates by name: each served by its own https server. */
const servers = new Map<string, { url: string; server: https.Server; requests: number; notAfterMs: number }>();

// `openssl ca` can set any validity period (OpenSSL 3.0's req and x509 only take -days > 0),
// so even an expired certificate can be made without faking the clock.
const CA_CONFIG = `[ ca ]
default_ca = test
[ test ]
database = index.txt
new_certs_dir = .
default_md = sha256
policy = anything
serial = serial
unique_subject = no
copy_extensions = copy
[ anything ]
commonName = supplied
`;

function openssl(...args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** Y2K-style ASN.1 time for `openssl ca -startdate/-enddate`: YYYYMMDDHHMMSSZ. */
function asn1Time(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

async function serve(
  name: string,
  options: { san: string; fromMs: number; toMs: number; selfSigned: boolean },
): Promise<void> {
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
    '-addext',
    `subjectAltName=${options.san}`,
  );
  const signer = options.selfSigned
    ? ['-selfsign', '-keyfile', `${name}.key`]
    : ['-cert', 'ca.pem', '-keyfile', 'ca.key'];
  openssl(
    'ca',
    '-batch',
    '-notext',
    '-config',
    'ca.cnf',
    ...signer,
    '-in',
    `${name}.csr`,
    '-out',
    `${name}.pem`,
    '-startdate',
    asn1Time(options.fromMs),
    '-enddate',
    asn1Time(options.toMs),
  );
  const entry = {
    url: '',
    server: https.createServer({
      key: readFileSync(join(dir, `${name}.key`)),
      cert: readFileSync(join(dir, `${name}.pem`)),
    }),
    requests: 0,
    notAfterMs: Math.floor(options.toMs / 1000) * 1000,
  };
  entry.server.on('request', (_req, res) => {
    entry.requests++;
    res.end('UP');
  });
  await new Promise<void>((resolve) => entry.server.listen(0, '127.0.0.1', resolve));
  entry.url = `https://127.0.0.1:${(entry.server.address() as AddressInfo).port}/health`;
  servers.set(name, entry);
}

before(async () => {
  if (skip !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'status-stream-tls-'));
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '3650',
    '-subj',
    '/CN=status-stream test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  const now = Date.now();
  const here = 'IP:127.0.0.1,DNS:localhost';
  await serve('trusted', { san: here, fromMs: now - DAY_MS, toMs: now + 400 * DAY_MS, selfSigned: false });
  await serve('trusted-soon', { san: here, fromMs: now - DAY_MS, toMs: now + 5 * DAY_MS, selfSigned: false });
  await serve('other-host', {
    san: 'DNS:other.example',
    fromMs: now - DAY_MS,
    toMs: now + 400 * DAY_MS,
    selfSigned: false,
  });
  await serve('self-signed', { san: here, fromMs: now - DAY_MS, toMs: now + 400 * DAY_MS, selfSigned: true });
  await serve('soon', { san: here, fromMs: now - DAY_MS, toMs: now + 5 * DAY_MS, selfSigned: true });
  await serve('expired', { san: here, fromMs: Date.UTC(2020, 0, 1), toMs: now - 3 * DAY_MS, selfSigned: true });
});

after(() => {
  for (const { server } of servers.values()) {
    server.closeAllConnections();
    server.close();
  }
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function target(name: string): { url: string; requests: number; notAfterMs: number } {
  const entry = servers.get(name);
  assert.ok(entry, `no server ${name}`);
  return entry;
}

async function run(name: string, options: Record<string, unknown> = {}): Promise<Outcome> {
  const { checks, problems } = parseCheckDefinitions(
    [{ name, url: target(name).url, ...options }],
    'test.json',
    DEFAULTS,
    new Set(),
  );
  assert.deepEqual(problems, []);
  return withDeadline(runCheck(checks[0], CONTEXT), 15_000, `check of ${name}`);
}

function summary(outcome: Outcome): [string, string, string | null] {
  return [outcome.state, outcome.detail, outcome.reason];
}

test('a self-signed certificate is down, and no request is sent to that server', { skip }, async () => {
  const outcome = await run('self-signed');
  assert.deepEqual(summary(outcome), [
    'down',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'certificate not valid: DEPTH_ZERO_SELF_SIGNED_CERT',
  ]);
  assert.equal(outcome.certExpiresAt, new Date(target('self-signed').notAfterMs).toISOString());
  assert.equal(target('self-signed').requests, 0);
});

test('insecure skips chain and hostname verification but still reports the certificate', { skip }, async () => {
  const outcome = await run('self-signed', { insecure: true });
  assert.deepEqual(summary(outcome), ['up', 'HTTP 200', null]);
  assert.equal(outcome.certExpiresAt, new Date(target('self-signed').notAfterMs).toISOString());
});

test('a certificate from a CA that is not trusted is down', { skip }, async () => {
  const outcome = await run('trusted');
  assert.equal(outcome.state, 'down');
  assert.match(outcome.reason ?? '', /^certificate not valid: [A-Z_]+$/);
});

test('a certificate expiring within certMinDays (default 14) is degraded; insecure does not change that', {
  skip,
}, async () => {
  const outcome = await run('soon', { insecure: true });
  assert.deepEqual(summary(outcome), ['degraded', 'HTTP 200', 'certificate expires in 5 days']);
  assert.equal(outcome.certExpiresAt, new Date(target('soon').notAfterMs).toISOString());
  assert.deepEqual(summary(await run('soon', { insecure: true, certMinDays: 4 })), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await run('soon', { insecure: true, certMinDays: 0 })), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await run('self-signed', { insecure: true, certMinDays: 500 })), [
    'degraded',
    'HTTP 200',
    'certificate expires in 400 days',
  ]);
});

test('an expired certificate is down, with or without insecure', { skip }, async () => {
  const insecure = await run('expired', { insecure: true });
  assert.deepEqual(summary(insecure), ['down', 'HTTP 200', 'certificate expired 3 days ago']);
  const verified = await run('expired');
  assert.equal(verified.state, 'down');
  assert.equal(verified.reason, 'certificate expired 3 days ago');
  assert.match(verified.detail, /^(CERT_HAS_EXPIRED|DEPTH_ZERO_SELF_SIGNED_CERT)$/);
});

test('a failing condition outranks a certificate about to expire', { skip }, async () => {
  assert.deepEqual(summary(await run('soon', { insecure: true, expect: { bodyContains: 'DOWN' } })), [
    'down',
    'HTTP 200',
    'body does not contain "DOWN"',
  ]);
});

test('NODE_EXTRA_CA_CERTS is honoured: its CA is trusted, hostnames are still verified', { skip }, async () => {
  const script = join(dir, 'run-checks.mts');
  const checksModule = pathToFileURL(join(ROOT, 'checks/index.ts')).href;
  writeFileSync(
    script,
    `
    import { parseCheckDefinitions, PushLog, runCheck } from ${JSON.stringify(checksModule)};
    const defaults = { timeoutMs: 5000, intervalMs: 10000 };
    const { checks, problems } = parseCheckDefinitions(JSON.parse(process.argv[2]), 'child', defaults, new Set());
    const context = { pushes: new PushLog(), startedAtMs: Date.now() };
    const outcomes = await Promise.all(checks.map((c) => runCheck(c, context)));
    process.stdout.write(JSON.stringify({ problems, outcomes }));
  `,
  );
  const definitions = [
    { name: 'trusted', url: target('trusted').url },
    { name: 'soon', url: target('trusted-soon').url },
    { name: 'other', url: target('other-host').url },
    { name: 'other-insecure', url: target('other-host').url, insecure: true },
    { name: 'localhost', url: target('trusted').url.replace('127.0.0.1', 'localhost') },
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(definitions)], {
    cwd: ROOT,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  try {
    const code = await withDeadline(
      new Promise((resolve) => child.once('exit', resolve)),
      30_000,
      'the child running checks',
    );
    assert.equal(code, 0, stderr);
  } finally {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }
  const { problems, outcomes } = JSON.parse(stdout) as { problems: string[]; outcomes: Outcome[] };
  assert.deepEqual(problems, []);
  assert.deepEqual(outcomes.map(summary), [
    ['up', 'HTTP 200', null],
    ['degraded', 'HTTP 200', 'certificate expires in 5 days'],
    ['down', 'ERR_TLS_CERT_ALTNAME_INVALID', 'certificate not valid: ERR_TLS_CERT_ALTNAME_INVALID'],
    ['up', 'HTTP 200', null],
    ['up', 'HTTP 200', null],
  ]);
  assert.equal(outcomes[0].certExpiresAt, new Date(target('trusted').notAfterMs).toISOString());
});
