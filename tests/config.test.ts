// Configuration: every variable validated, all problems reported at once, exit 2 with one
// line per problem, --help, and the README's table kept equal to the settings table.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ConfigError,
  defaultMaxConnections,
  parseConfig,
  redactedConfig,
  SETTINGS,
  softDescriptorLimit,
} from '../config.ts';
import { ROOT, runToExit } from './helpers.ts';

function problems(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

test('uses the documented defaults when nothing is set', () => {
  const config = parseConfig({});
  assert.deepEqual(
    { ...config },
    {
      port: 8080,
      host: '0.0.0.0',
      intervalMs: 10_000,
      checks: [],
      checkTimeoutMs: 2000,
      heartbeatMs: 15_000,
      retryMs: 3000,
      historySize: 100,
      maxClients: 10_000,
      maxBufferedBytes: 262_144,
      corsOrigins: [],
      authToken: null,
      shutdownGraceMs: 5000,
      logLevel: 'info',
      title: hostname(),
      configFile: null,
      stateDir: null,
      maxConnections: defaultMaxConnections(softDescriptorLimit(), {}),
      headersTimeoutMs: 10_000,
      publishToken: null,
    },
  );
  assert.ok(Object.isFrozen(config));
});

test('caps connections below the descriptor limit, with room for every stream when the limit allows', () => {
  assert.equal(defaultMaxConnections(20_000, {}), 19_936);
  assert.equal(defaultMaxConnections(1024, {}), 960);
  assert.equal(defaultMaxConnections(10_050, {}), 10_016, 'MAX_CLIENTS + 16 fits under the limit');
  assert.equal(defaultMaxConnections(256, { MAX_CLIENTS: '100' }), 192);
  assert.equal(defaultMaxConnections(null, {}), null);
  assert.equal(parseConfig({ MAX_CONNECTIONS: '50' }).maxConnections, 50);
  const limit = softDescriptorLimit();
  assert.ok(limit === null || limit > 64, `read ${limit} from /proc/self/limits`);
});

test('PUBLISH_TOKEN must differ from AUTH_TOKEN and is never echoed', () => {
  assert.deepEqual(problems({ AUTH_TOKEN: 'same-secret', PUBLISH_TOKEN: 'same-secret' }), [
    'config: PUBLISH_TOKEN must differ from AUTH_TOKEN (a reader must not be able to write)',
  ]);
  const [problem] = problems({ PUBLISH_TOKEN: 'a secret' });
  assert.match(problem, /PUBLISH_TOKEN must be visible ASCII/);
  assert.doesNotMatch(problem, /secret/);
  const logged = JSON.stringify(redactedConfig(parseConfig({ PUBLISH_TOKEN: 'pub-tok' })));
  assert.doesNotMatch(logged, /pub-tok/);
});

test("the README's configuration table is the settings table", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| ([^|]+) \|/gm)].map((m) => [
    m[1],
    m[2].trim().replace(/^`|`$/g, ''),
  ]);
  assert.deepEqual(
    rows,
    SETTINGS.map((s) => [s.name, s.shown]),
  );
});

test('accepts valid values at the edges of each range', () => {
  const config = parseConfig({
    PORT: '0',
    HOST: '::',
    STATUS_INTERVAL_MS: '100',
    CHECK_TIMEOUT_MS: '1',
    HEARTBEAT_MS: '0',
    RETRY_MS: '0',
    HISTORY_SIZE: '0',
    MAX_CLIENTS: '1',
    MAX_BUFFERED_BYTES: '1024',
    CORS_ORIGIN: '*',
    AUTH_TOKEN: 's3cr3t-token',
    SHUTDOWN_GRACE_MS: '0',
    LOG_LEVEL: 'silent',
  });
  assert.equal(config.port, 0);
  assert.equal(config.heartbeatMs, 0);
  assert.equal(config.corsOrigins, '*');
  assert.equal(config.authToken, 's3cr3t-token');
  assert.equal(parseConfig({ PORT: '65535', HEARTBEAT_MS: '100' }).heartbeatMs, 100);
});

test('names the variable, the value and what is accepted for each bad value', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['PORT', 'abc', /^config: PORT must be an integer from 0 to 65535, got "abc"$/],
    ['PORT', '65536', /PORT must be an integer from 0 to 65535, got "65536"/],
    ['PORT', ' 80', /PORT must be/],
    ['STATUS_INTERVAL_MS', '99', /STATUS_INTERVAL_MS must be an integer from 100 to 2147483647, got "99"/],
    ['STATUS_INTERVAL_MS', '1e4', /STATUS_INTERVAL_MS/],
    ['CHECK_TIMEOUT_MS', '0', /CHECK_TIMEOUT_MS must be an integer from 1/],
    ['HEARTBEAT_MS', '50', /HEARTBEAT_MS must be 0 \(off\) or an integer from 100/],
    ['HEARTBEAT_MS', '-1', /HEARTBEAT_MS must be 0 \(off\)/],
    ['RETRY_MS', '1.5', /RETRY_MS must be an integer from 0/],
    ['HISTORY_SIZE', '100001', /HISTORY_SIZE must be an integer from 0 to 100000/],
    ['MAX_CLIENTS', '0', /MAX_CLIENTS must be an integer from 1/],
    ['MAX_BUFFERED_BYTES', '1023', /MAX_BUFFERED_BYTES must be an integer from 1024/],
    ['SHUTDOWN_GRACE_MS', 'soon', /SHUTDOWN_GRACE_MS must be an integer from 0/],
    ['LOG_LEVEL', 'verbose', /LOG_LEVEL must be one of debug, info, warn, error, silent, got "verbose"/],
    ['HOST', 'a b', /HOST must be an address or host name without spaces, got "a b"/],
    ['CORS_ORIGIN', 'https://a.example/path', /CORS_ORIGIN must be \* or a comma-separated list of origins/],
    ['CORS_ORIGIN', 'not a url', /CORS_ORIGIN/],
  ];
  for (const [name, value, expected] of cases) {
    const found = problems({ [name]: value });
    assert.equal(found.length, 1, `${name}=${value}: ${found.join(' | ')}`);
    assert.match(found[0], expected);
  }
});

test('reports every problem at once', () => {
  const found = problems({ PORT: 'x', RETRY_MS: 'y', LOG_LEVEL: 'z', CHECKS: 'ftp://a' });
  assert.equal(found.length, 4);
  // In the order of the settings table, which --help and the README follow.
  assert.deepEqual(
    found.map((p) => p.split(' ')[1]),
    ['PORT', 'CHECKS', 'RETRY_MS', 'LOG_LEVEL'],
  );
});

test('never echoes a bad AUTH_TOKEN', () => {
  const [problem] = problems({ AUTH_TOKEN: 'has space secret' });
  assert.match(problem, /AUTH_TOKEN must be visible ASCII characters \(no spaces\), got a value of 16 characters/);
  assert.doesNotMatch(problem, /secret/);
});

test('quotes control characters and cuts long values in error lines', () => {
  const [problem] = problems({ PORT: `1\n2${'9'.repeat(200)}` });
  assert.match(problem, /got "1\\n29+…"$/);
  assert.ok(problem.length < 200);
});

test('parses CHECKS names, urls and kinds', () => {
  const { checks } = parseConfig({
    CHECKS:
      'app=http://127.0.0.1:3000/healthz, db=tcp://127.0.0.1:5432,https://example.test/x?a=b,tcp://[::1]:6379,' +
      'q=http://h/?next=http://i/,a=b=http://h:81/',
  });
  assert.deepEqual(
    checks.map((c) => [c.name, c.kind, c.target]),
    [
      ['app', 'http', 'http://127.0.0.1:3000/healthz'],
      ['db', 'tcp', 'tcp://127.0.0.1:5432'],
      // Query values are secrets as often as not (?apikey=): targets show their names only.
      ['example.test:443', 'https', 'https://example.test/x?a=…'],
      ['[::1]:6379', 'tcp', 'tcp://[::1]:6379'],
      ['q', 'http', 'http://h/?next=…'],
      ['a=b', 'http', 'http://h:81/'],
    ],
  );
  const tcp = checks[3];
  assert.ok(tcp.kind === 'tcp');
  assert.equal(tcp.host, '::1');
  assert.equal(tcp.port, 6379);
});

test('keeps credentials of a check url out of its target and out of the logged config', () => {
  const config = parseConfig({ CHECKS: 'api=http://user:pw@127.0.0.1:9/h', AUTH_TOKEN: 'tok' });
  const check = config.checks[0];
  assert.ok(check.kind === 'http');
  assert.equal(check.target, 'http://127.0.0.1:9/h');
  assert.equal(check.url, 'http://user:pw@127.0.0.1:9/h');
  const logged = JSON.stringify(redactedConfig(config));
  assert.doesNotMatch(logged, /pw|"tok"/);
  assert.match(logged, /\[redacted\]/);
});

test('refuses bad CHECKS entries with the entry named', () => {
  const cases: Array<[string, RegExp]> = [
    [
      'ftp://x',
      /CHECKS entries must be \[name=\]url with an http:\/\/, https:\/\/, tcp:\/\/host:port or dns:\/\/name url, got "ftp:\/\/x"/,
    ],
    ['db=tcp://127.0.0.1', /tcp:\/\/host:port, with a port/],
    ['db=tcp://127.0.0.1:5/path', /with a port and nothing after it/],
    ['a=http://x,a=http://y', /unique names \("a" is used twice\)/],
    ['\x01=http://x', /without control characters/],
    ['=http://x', /without control characters/],
    ['a=http://[zz', /valid url/],
  ];
  for (const [value, expected] of cases) {
    const found = problems({ CHECKS: value });
    assert.equal(found.length, 1, `${value}: ${found.join(' | ')}`);
    assert.match(found[0], expected);
  }
});

test('accepts a list of exact CORS origins', () => {
  assert.deepEqual(parseConfig({ CORS_ORIGIN: 'https://a.example, http://localhost:3000' }).corsOrigins, [
    'https://a.example',
    'http://localhost:3000',
  ]);
});

test('a bad value stops start-up with exit code 2 and one line per problem on stderr', async () => {
  const { code, stdout, stderr } = await runToExit({ PORT: 'abc', HEARTBEAT_MS: '5' });
  assert.equal(code, 2);
  assert.equal(stdout, '');
  assert.deepEqual(stderr.trim().split('\n'), [
    'config: PORT must be an integer from 0 to 65535, got "abc"',
    'config: HEARTBEAT_MS must be 0 (off) or an integer from 100 to 2147483647, got "5"',
  ]);
});

test('--help prints the configuration table and exits 0', async () => {
  const { code, stdout } = await runToExit({}, ['--help']);
  assert.equal(code, 0);
  for (const setting of SETTINGS) {
    assert.match(stdout, new RegExp(`^  ${setting.name} +${setting.shown.replace(/[()]/g, '\\$&')} `, 'm'));
  }
  assert.match(stdout, /--check-config/);
});
