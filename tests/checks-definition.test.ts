// Check definitions: the CHECKS grammar, CONFIG_FILE entries with every field, default names,
// and every problem reported at once with its place, the value given and what is accepted.
// Also how a URL is shown: never credentials, never query values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CheckDefinition, parseCheckDefinitions, parseCheckList, redactUrl } from '../checks/index.ts';
import { redactUnparsedUrl } from '../checks/url.ts';

const DEFAULTS = { timeoutMs: 2000, intervalMs: 10_000 };
const FILE = '/etc/ss.json';
const MUST = 'config: CHECKS entries must be';

function list(value: string): CheckDefinition[] {
  const { checks, problems } = parseCheckList(value, DEFAULTS);
  assert.deepEqual(problems, []);
  return checks;
}

function file(
  entries: unknown,
  taken: ReadonlySet<string> = new Set(),
): { checks: CheckDefinition[]; problems: string[] } {
  return parseCheckDefinitions(entries, FILE, DEFAULTS, taken);
}

test('CHECKS: names, kinds and targets; the name is everything before the "=" before the scheme', () => {
  const checks = list(
    'app=http://127.0.0.1:3000/healthz, db=tcp://127.0.0.1:5432,https://example.test/x?a=b,tcp://[::1]:6379,' +
      'q=http://h/?next=http://i/,a=b=http://h:81/,' +
      'resolver=dns://example.test?type=mx&server=127.0.0.1:53,dns://example.test',
  );
  assert.deepEqual(
    checks.map((c) => [c.name, c.kind, c.target]),
    [
      ['app', 'http', 'http://127.0.0.1:3000/healthz'],
      ['db', 'tcp', 'tcp://127.0.0.1:5432'],
      ['example.test:443', 'https', 'https://example.test/x?a=…'],
      ['[::1]:6379', 'tcp', 'tcp://[::1]:6379'],
      ['q', 'http', 'http://h/?next=…'],
      ['a=b', 'http', 'http://h:81/'],
      ['resolver', 'dns', 'dns://example.test?type=MX&server=127.0.0.1:53'],
      ['example.test', 'dns', 'dns://example.test?type=A'],
    ],
  );
  const tcp = checks[3];
  assert.ok(tcp.kind === 'tcp');
  assert.deepEqual([tcp.host, tcp.port], ['::1', 6379]);
  const dns = checks[6];
  assert.ok(dns.kind === 'dns');
  assert.deepEqual([dns.query, dns.type, dns.server, dns.answer], ['example.test', 'MX', '127.0.0.1:53', null]);
});

test('CHECKS: every option at its default', () => {
  const [check] = list('http://127.0.0.1:9/');
  assert.deepEqual(check, {
    name: '127.0.0.1:9',
    kind: 'http',
    target: 'http://127.0.0.1:9/',
    url: 'http://127.0.0.1:9/',
    timeoutMs: 2000,
    intervalMs: 10_000,
    critical: false,
    failuresToDown: 1,
    successesToUp: 1,
    degradedMs: null,
    expect: { status: [{ low: 200, high: 399 }], bodyContains: null, json: null },
    certMinDays: 14,
    insecure: false,
  });
  assert.ok(Object.isFrozen(check) && Object.isFrozen(check.kind === 'http' && check.expect));
});

test('credentials stay in the url that is requested and out of the target', () => {
  const [check] = list('api=http://user:pw@127.0.0.1:9/h?apikey=Pa55');
  assert.ok(check.kind === 'http');
  assert.equal(check.target, 'http://127.0.0.1:9/h?apikey=…');
  assert.equal(check.url, 'http://user:pw@127.0.0.1:9/h?apikey=Pa55');
});

test('unnamed checks are named host:port, with the path when two would clash', () => {
  assert.deepEqual(
    list('http://127.0.0.1:9101/a,http://127.0.0.1:9101/b?k=secret,http://127.0.0.1:9102/c').map((c) => c.name),
    ['127.0.0.1:9101/a', '127.0.0.1:9101/b', '127.0.0.1:9102'],
  );
  assert.deepEqual(
    list('127.0.0.1:9101=tcp://h:1,http://127.0.0.1:9101/a').map((c) => c.name),
    ['127.0.0.1:9101', '127.0.0.1:9101/a'],
  );
  assert.deepEqual(
    list('dns://a.test?type=A,dns://a.test?type=MX').map((c) => c.name),
    ['a.test/A', 'a.test/MX'],
  );
  // A name CHECKS took is not reused by the file's default names.
  const { checks } = file([{ url: 'http://127.0.0.1:9101/b' }], new Set(['127.0.0.1:9101']));
  assert.deepEqual(
    checks.map((c) => c.name),
    ['127.0.0.1:9101/b'],
  );
});

test('CHECKS: each bad entry is one problem naming it and what is accepted', () => {
  const cases: Array<[string, string]> = [
    ['ftp://x', `${MUST} [name=]url with an http://, https://, tcp://host:port or dns://name url, got "ftp://x"`],
    [
      'db=tcp://127.0.0.1',
      'config: CHECKS entries must be tcp://host:port, with a port and nothing after it, got "db=tcp://127.0.0.1"',
    ],
    [
      'db=tcp://127.0.0.1:5/path',
      `${MUST} tcp://host:port, with a port and nothing after it, got "db=tcp://127.0.0.1:5/path"`,
    ],
    [
      'db=tcp://u:p@127.0.0.1:5',
      'config: CHECKS entries must be tcp://host:port, with a port and nothing after it, got "db=tcp://127.0.0.1:5"',
    ],
    ['a=http://x,a=http://y', 'config: CHECKS entries must be unique names ("a" is used twice), got "a=http://y"'],
    ['tcp://h:1,tcp://h:1', 'config: CHECKS entries must be unique names ("h:1" is used twice), got "tcp://h:1"'],
    ['\x01=http://x', 'config: CHECKS entries must be a name without control characters, got "\\u0001=http://x"'],
    ['=http://x', 'config: CHECKS entries must be a name without control characters, got "=http://x"'],
    ['a=http://[zz', 'config: CHECKS entries must be [name=]url with a valid url, got "a=http://[zz"'],
    [
      'beat=push://',
      `${MUST} http, https, tcp or dns checks (a push:// check needs withinMs: define it in CONFIG_FILE), ` +
        'got "beat=push://"',
    ],
    [
      'dns://x.test?type=SRV',
      `${MUST} dns://name[?type=A|AAAA|CNAME|MX|TXT&server=ip[:port]], got "dns://x.test?type=…"`,
    ],
  ];
  for (const [value, expected] of cases) {
    const { checks, problems } = parseCheckList(value, DEFAULTS);
    assert.deepEqual(problems, [expected], value);
    assert.ok(checks.length <= 1);
  }
  // All at once, in order, and the good ones still parsed.
  const { checks, problems } = parseCheckList('ok=http://h/,ftp://x,db=tcp://h,ok=http://i/', DEFAULTS);
  assert.equal(problems.length, 3);
  assert.deepEqual(
    checks.map((c) => c.name),
    ['ok'],
  );
});

test('a problem never shows credentials or query values', () => {
  const { problems } = parseCheckList('a=http://user:secret@h/?k=Pa55,a=http://user:secret@h/?k=Pa55', DEFAULTS);
  assert.deepEqual(problems, [
    'config: CHECKS entries must be unique names ("a" is used twice), got "a=http://h/?k=…"',
  ]);
  const fromFile = file([{ name: 'x', url: 'gopher://user:secret@h/?k=Pa55' }]).problems;
  assert.deepEqual(fromFile, [
    `config: ${FILE}: checks[0] "x": url: "gopher://h/?k=…" is not ` +
      'an http://, https://, tcp://host:port, dns://name or push:// url',
  ]);
});

test('dns urls: type and server are checked', () => {
  const bad = [
    'dns://x.test?type=A&type=MX',
    'dns://x.test?server=host:53',
    'dns://x.test?server=1.2.3.4:0',
    'dns://x.test?foo=1',
    'dns://x.test:53',
    'dns://x.test/path',
    'dns://bad_name-.test',
    'dns://?type=A',
    'dns://x.test?server=[::1',
  ];
  for (const url of bad) assert.equal(parseCheckList(url, DEFAULTS).problems.length, 1, url);
  const servers = ['1.2.3.4', '1.2.3.4:5353', '[::1]:53', '::1', '[::1]'].map((server) => {
    const [check] = list(`dns://_dmarc.x.test?type=txt&server=${server}`);
    return check.kind === 'dns' ? check.server : null;
  });
  assert.deepEqual(servers, ['1.2.3.4', '1.2.3.4:5353', '[::1]:53', '::1', '::1']);
});

test('CONFIG_FILE: a definition with every field', () => {
  const { checks, problems } = file([
    {
      name: 'web',
      url: 'https://user:pw@example.test:8443/health?key=Pa55',
      timeoutMs: 5000,
      intervalMs: 30_000,
      expect: {
        status: [200, '204', '300-308'],
        bodyContains: 'UP',
        json: { path: 'checks.0.status', equals: { ok: true } },
      },
      degradedMs: 800,
      certMinDays: 30,
      insecure: true,
      critical: true,
      failuresToDown: 3,
      successesToUp: 2,
    },
    { name: 'db', url: 'tcp://10.0.0.5:5432', timeoutMs: 1000, degradedMs: 200 },
    { name: 'mx', url: 'dns://example.test?type=MX&server=127.0.0.1:5353', expect: { answer: 'mail.example.test' } },
    { name: 'nightly-backup', url: 'push://', withinMs: 90_000_000, critical: true },
  ]);
  assert.deepEqual(problems, []);
  assert.deepEqual(checks, [
    {
      name: 'web',
      kind: 'https',
      target: 'https://example.test:8443/health?key=…',
      url: 'https://user:pw@example.test:8443/health?key=Pa55',
      timeoutMs: 5000,
      intervalMs: 30_000,
      critical: true,
      failuresToDown: 3,
      successesToUp: 2,
      degradedMs: 800,
      expect: {
        status: [
          { low: 200, high: 200 },
          { low: 204, high: 204 },
          { low: 300, high: 308 },
        ],
        bodyContains: 'UP',
        json: { path: 'checks.0.status', equals: { ok: true } },
      },
      certMinDays: 30,
      insecure: true,
    },
    {
      name: 'db',
      kind: 'tcp',
      target: 'tcp://10.0.0.5:5432',
      host: '10.0.0.5',
      port: 5432,
      timeoutMs: 1000,
      intervalMs: 10_000,
      critical: false,
      failuresToDown: 1,
      successesToUp: 1,
      degradedMs: 200,
    },
    {
      name: 'mx',
      kind: 'dns',
      target: 'dns://example.test?type=MX&server=127.0.0.1:5353',
      query: 'example.test',
      type: 'MX',
      server: '127.0.0.1:5353',
      answer: 'mail.example.test',
      timeoutMs: 2000,
      intervalMs: 10_000,
      critical: false,
      failuresToDown: 1,
      successesToUp: 1,
      degradedMs: null,
    },
    {
      name: 'nightly-backup',
      kind: 'push',
      target: 'push://',
      withinMs: 90_000_000,
      timeoutMs: 2000,
      intervalMs: 10_000,
      critical: true,
      failuresToDown: 1,
      successesToUp: 1,
      degradedMs: null,
    },
  ]);
});

test('CONFIG_FILE: every problem at once, each with file, index, name, field, value and what is accepted', () => {
  const { checks, problems } = file(
    [
      { name: 'web', url: 'http://h/', expect: { status: ['500-200', 700, 'x'] } },
      {
        name: 'types',
        url: 'http://h/t',
        timeoutMs: '2000',
        critical: 'yes',
        failuresToDown: 0,
        intervalMs: 50,
        degradedMs: 1.5,
      },
      { name: 'slow', url: 'http://h/s', timeoutMs: 1000, degradedMs: 1000 },
      {
        name: 'kinds',
        url: 'http://h/k',
        withinMs: 60_000,
        certMinDays: 5,
        insecure: true,
        expect: { answer: '1.2.3.4' },
      },
      { name: 'extra', url: 'tcp://h:1', retries: 3, expect: { status: [200] } },
      { name: 'a,b', url: 'http://h/n' },
      { name: 'bad\u0007', url: 'http://h/n' },
      { url: 'ftp://x' },
      { name: 'no-url' },
      'http://h/',
      { name: 'json', url: 'http://h/j', expect: { json: { path: 'a..b', equals: 1, extra: true } } },
      { name: 'json2', url: 'http://h/j', expect: { json: { path: 'a' }, bodyContains: '' } },
      { name: 'json3', url: 'http://h/j', expect: { json: 'a=1' } },
      { name: 'expect', url: 'http://h/e', expect: [200] },
      { url: 'push://' },
      { name: 'beat', url: 'push://x', withinMs: '1h', timeoutMs: 100, degradedMs: 5 },
      { name: 'answer', url: 'dns://x.test?type=AAAA', expect: { answer: '1.2.3.4' } },
      { name: 'web', url: 'http://h/again' },
      { name: 'db', url: 'tcp://h:2' },
      { name: 'status', url: 'http://h/st', expect: { status: [] }, insecure: 'no' },
      { name: 'tls', url: 'https://h/', certMinDays: -1, insecure: 'no', successesToUp: 1001 },
    ],
    new Set(['db']),
  );
  const at = (i: number, name: string | null): string =>
    `config: ${FILE}: checks[${i}]${name === null ? '' : ` "${name}"`}: `;
  assert.deepEqual(problems, [
    `${at(0, 'web')}expect.status: "500-200" is not a range low-high with low <= high`,
    `${at(0, 'web')}expect.status: 700 is not a status code 100-599`,
    `${at(0, 'web')}expect.status: "x" is not a status code 100-599, a range like "200-299", or a list of them`,
    `${at(1, 'types')}timeoutMs: "2000" is not an integer from 1 to 2147483647`,
    `${at(1, 'types')}degradedMs: 1.5 is not an integer from 1 to 2147483647`,
    `${at(1, 'types')}intervalMs: 50 is not an integer from 100 to 2147483647`,
    `${at(1, 'types')}critical: "yes" is not true or false`,
    `${at(1, 'types')}failuresToDown: 0 is not an integer from 1 to 1000`,
    `${at(2, 'slow')}degradedMs: 1000 is not less than timeoutMs (1000): a slower run is a timeout`,
    `${at(3, 'kinds')}withinMs: http checks take no withinMs (only push checks do)`,
    `${at(3, 'kinds')}certMinDays: http checks take no certMinDays (only https checks do)`,
    `${at(3, 'kinds')}insecure: http checks take no insecure (only https checks do)`,
    `${at(3, 'kinds')}expect.answer: http checks take no expect.answer (only dns checks do)`,
    `${at(4, 'extra')}retries: unknown field; a tcp check takes ` +
      'name, url, intervalMs, critical, failuresToDown, successesToUp, timeoutMs, degradedMs',
    `${at(4, 'extra')}expect.status: tcp checks take no expect.status (only http, https checks do)`,
    `${at(5, null)}name: "a,b" is not a non-empty name without control characters or commas`,
    `${at(6, null)}name: "bad\\u0007" is not a non-empty name without control characters or commas`,
    `${at(7, null)}url: "ftp://x" is not an http://, https://, tcp://host:port, dns://name or push:// url`,
    `${at(8, 'no-url')}url is required: an http://, https://, tcp://host:port, dns://name or push:// url`,
    `${at(9, null)}"http://h/" is not an object like {"url": "https://example.com/health"}`,
    `${at(10, 'json')}expect.json.extra: true is not a field of expect.json (path, equals)`,
    `${at(10, 'json')}expect.json.path: "a..b" is not object keys and array indexes joined by dots, like "a.b.0.c"`,
    `${at(11, 'json2')}expect.bodyContains: "" is not a non-empty string`,
    `${at(11, 'json2')}expect.json.equals is required: a JSON value, compared by strict JSON equality`,
    `${at(12, 'json3')}expect.json: "a=1" is not {"path": "a.b.0.c", "equals": <a JSON value>}`,
    `${at(13, 'expect')}expect: [200] is not an object like {"status": [200, "300-308"], "bodyContains": "UP"}`,
    `${at(14, null)}name is required: push checks are pushed to as POST /push/<name>`,
    `${at(14, null)}withinMs is required: an integer from 1 to 31622400000 (a year)`,
    `${at(15, 'beat')}timeoutMs: push checks take no timeoutMs (only http, https, tcp, dns checks do)`,
    `${at(15, 'beat')}degradedMs: push checks take no degradedMs (only http, https, tcp, dns checks do)`,
    `${at(15, 'beat')}url: "push://x" is not push:// with nothing after it`,
    `${at(15, 'beat')}withinMs: "1h" is not an integer from 1 to 31622400000 (a year)`,
    `${at(16, 'answer')}expect.answer: "1.2.3.4" is not an IPv6 address (the check's type is AAAA)`,
    `${at(17, 'web')}name: "web" is used twice (also checks[0])`,
    `${at(18, 'db')}name: "db" is used twice (also in CHECKS)`,
    `${at(19, 'status')}insecure: http checks take no insecure (only https checks do)`,
    `${at(19, 'status')}expect.status: [] is not a status code 100-599, a range like "200-299", or a list of them`,
    `${at(20, 'tls')}successesToUp: 1001 is not an integer from 1 to 1000`,
    `${at(20, 'tls')}certMinDays: -1 is not an integer from 0 to 3650`,
    `${at(20, 'tls')}insecure: "no" is not true or false`,
  ]);
  // Only the first "web" was good: a file with problems is refused as a whole by the caller.
  assert.deepEqual(
    checks.map((c) => c.name),
    [],
  );
});

test('CONFIG_FILE: two unnamed checks that would share a name are told to take names', () => {
  const { problems } = file([{ url: 'http://h/x' }, { url: 'http://h/x?v=2' }]);
  assert.deepEqual(problems, [
    `config: ${FILE}: checks[1] "h:80": name: "h:80/x" is used twice (also checks[0]); give the checks names`,
  ]);
});

test('CONFIG_FILE: no "checks" is no checks; anything but an array is a problem', () => {
  assert.deepEqual(file(undefined), { checks: [], problems: [] });
  assert.deepEqual(file({ url: 'http://h/' }).problems, [
    `config: ${FILE}: checks: {"url":"http://h/"} is not an array of check definitions`,
  ]);
  assert.deepEqual(file([]), { checks: [], problems: [] });
});

test('CONFIG_FILE: a long value is cut in the problem line', () => {
  const [problem] = file([
    { name: 'x', url: 'http://h/', expect: { bodyContains: 5, status: 'y'.repeat(200) } },
  ]).problems;
  assert.ok(problem.length < 300, problem);
  assert.match(problem, /"y+…" is not/);
});

test('redactUrl shows neither credentials, nor query values, nor the fragment', () => {
  const cases: Array<[string, string]> = [
    ['http://user:pw@h:81/p?apikey=Pa55&v=1#frag', 'http://h:81/p?apikey=…&v=…'],
    ['https://h/p?token', 'https://h/p?…'],
    ['https://h/p?a=&&b=c', 'https://h/p?a=…&&b=…'],
    ['https://h/p?', 'https://h/p'],
    ['https://h/', 'https://h/'],
    ['tcp://h:5', 'tcp://h:5'],
    ['push://', 'push://'],
    ['dns://x.test?type=A', 'dns://x.test?type=…'],
  ];
  for (const [given, shown] of cases) assert.equal(redactUrl(new URL(given)), shown, given);
});

test('a check URL that does not parse is quoted without its credentials or query values', () => {
  const { problems } = parseCheckList(
    'a=https://user:hunter2@host:99999/x?apikey=Pa55#frag,ftp://u:pw2@h/?k=v2',
    DEFAULTS,
  );
  const text = problems.join('\n');
  assert.doesNotMatch(text, /hunter2|Pa55|frag|pw2|v2/);
  assert.match(text, /a=https:\/\/…@host:99999\/x\?apikey=…#…/);
  const file = parseCheckDefinitions(
    [{ name: 'b', url: 'https://user:hunter2@host:99999/x?apikey=Pa55' }],
    'f.json',
    DEFAULTS,
    new Set(),
  );
  assert.doesNotMatch(file.problems.join('\n'), /hunter2|Pa55/);
  assert.equal(redactUnparsedUrl('http://h/x'), 'http://h/x');
});
