// Badge routes end to end (docs/alerts.md#badges): /badge.svg and /badge/<check>.svg|.json answer
// the live state or uptime as well-formed, self-contained SVG (read by the strict XML reader
// of tests/xml.ts) or shields.io's endpoint JSON; hostile labels stay text; names with
// spaces or a slash are percent-encoded; unknown checks 404, bad uptime 400, AUTH_TOKEN 401.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { badgeText } from '../badge.ts';
import { type InProcess, type Reply, request, startInProcess, startTarget, type Target, waitFor } from './helpers.ts';
import { assertSafeSvg, texts, walk, type XmlElement } from './xml.ts';

// ---------------------------------------------------------------- the service

// /up answers 200, /down 503.
let target: Target;
let dir = '';
let service: InProcess;
const TOKEN = 'badge-read-token';
let guarded: InProcess;

before(async () => {
  target = await startTarget((path) => ({ code: path === '/down' ? 503 : 200 }));
  const base = target.url;
  dir = mkdtempSync(join(tmpdir(), 'status-stream-badge-'));
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      checks: [
        { name: 'web', url: `${base}/up` },
        { name: 'my api', url: `${base}/down` },
        { name: 'a/b', url: `${base}/up` },
        { name: 'api.v2', url: `${base}/up` },
        { name: '100% <sure>', url: `${base}/up` },
      ],
    }),
  );
  const env = { CONFIG_FILE: file, STATUS_INTERVAL_MS: '100', HEARTBEAT_MS: '0', TITLE: 'Shop <&> "main"' };
  service = await startInProcess(env);
  guarded = await startInProcess({ ...env, AUTH_TOKEN: TOKEN });
  for (const s of [service, guarded]) {
    await waitFor(
      async () => {
        const reply = await request(`${s.url}/status?token=${TOKEN}`);
        const { checks } = JSON.parse(reply.body) as { checks: Array<{ detail: string }> };
        return checks.every((c) => c.detail !== 'pending');
      },
      15_000,
      'a result for every check',
    );
  }
});
after(async () => {
  await service?.close();
  await guarded?.close();
  await target?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function svgBadge(path: string): Promise<{ reply: Reply; root: XmlElement }> {
  const reply = await request(`${service.url}${path}`);
  assert.equal(reply.status, 200, `${path}: ${reply.body}`);
  assert.equal(reply.headers['content-type'], 'image/svg+xml; charset=utf-8');
  assert.equal(reply.headers['cache-control'], 'no-cache');
  return { reply, root: assertSafeSvg(reply.body) };
}

/** The label and message a badge shows (each text is drawn twice: shadow and text). */
function shown(root: XmlElement): { label: string; message: string } {
  const [label, , message] = texts(root);
  return { label: label!, message: message! };
}

function fill(root: XmlElement): string | undefined {
  const rects = [...walk(root)].filter((e) => e.name === 'rect' && e.attributes.has('x'));
  return rects[0]?.attributes.get('fill');
}

test('/badge.svg shows the overall status, labelled with TITLE, as self-contained SVG', async () => {
  const { root } = await svgBadge('/badge.svg');
  assert.deepEqual(shown(root), { label: 'Shop <&> "main"', message: 'degraded' });
  assert.equal(fill(root), '#fe7d37');
  assert.equal(root.attributes.get('aria-label'), 'Shop <&> "main": degraded');
  const head = await request(`${service.url}/badge.svg`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['content-type'], 'image/svg+xml; charset=utf-8');
});

test('/badge/<check>.svg shows its state; a space, slash, dot or % in a name is percent-encoded', async () => {
  const cases: Array<[string, string, string, string]> = [
    ['/badge/web.svg', 'web', 'up', '#4c1'],
    ['/badge/my%20api.svg', 'my api', 'down', '#e05d44'],
    ['/badge/a%2Fb.svg', 'a/b', 'up', '#4c1'],
    ['/badge/api.v2.svg', 'api.v2', 'up', '#4c1'],
    [`/badge/${encodeURIComponent('100% <sure>')}.svg`, '100% <sure>', 'up', '#4c1'],
  ];
  for (const [path, label, message, color] of cases) {
    const { root } = await svgBadge(path);
    assert.deepEqual(shown(root), { label, message }, path);
    assert.equal(fill(root), color, path);
  }
});

test("/badge/<check>.json answers shields.io's endpoint schema", async () => {
  for (const [path, expected] of [
    ['/badge/web.json', { schemaVersion: 1, label: 'web', message: 'up', color: 'brightgreen' }],
    ['/badge/my%20api.json', { schemaVersion: 1, label: 'my api', message: 'down', color: 'red' }],
    ['/badge/api.v2.json?uptime=7d', { schemaVersion: 1, label: 'api.v2 7d', message: '100%', color: 'brightgreen' }],
    ['/badge/web.json?label=Web%20shop', { schemaVersion: 1, label: 'Web shop', message: 'up', color: 'brightgreen' }],
  ] as const) {
    const reply = await request(`${service.url}${path}`);
    assert.equal(reply.status, 200, path);
    assert.equal(reply.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(reply.headers['cache-control'], 'no-cache');
    assert.deepEqual(JSON.parse(reply.body), expected, path);
  }
});

test("?uptime=24h|7d|30d shows the check's uptime instead of its state", async () => {
  for (const range of ['24h', '7d', '30d']) {
    const up = shown((await svgBadge(`/badge/web.svg?uptime=${range}`)).root);
    assert.deepEqual(up, { label: `web ${range}`, message: '100%' });
    const { root } = await svgBadge(`/badge/my%20api.svg?uptime=${range}`);
    assert.deepEqual(shown(root), { label: `my api ${range}`, message: '0%' });
    assert.equal(fill(root), '#e05d44');
  }
  const labelled = shown((await svgBadge('/badge/web.svg?uptime=30d&label=month')).root);
  assert.deepEqual(labelled, { label: 'month', message: '100%' });
});

test('a hostile ?label= stays text: the SVG parses, holds no script, and the JSON carries the same text', async () => {
  const hostile = [
    `</text><script>alert(1)</script>&"'`,
    '<svg onload=alert(1)>',
    ']]><!-- <?xml ?>',
    '<image href="https://evil.example/x.png"/>',
    'line\nbreak\u202eflipped\u0000nul',
    'x'.repeat(300),
  ];
  for (const label of hostile) {
    const query = `?label=${encodeURIComponent(label)}`;
    for (const url of [`/badge.svg${query}`, `/badge/web.svg${query}`, `/badge/web.svg${query}&uptime=24h`]) {
      const { reply, root } = await svgBadge(url);
      assert.equal(shown(root).label, badgeText(label), url);
      // As raw text too: every `<` of the label arrives escaped.
      assert.doesNotMatch(reply.body, /<script|<image|<svg onload|<!--/i);
    }
    const json = JSON.parse((await request(`${service.url}/badge/web.json${query}`)).body) as { label: string };
    assert.equal(json.label, badgeText(label));
  }
});

test('an unknown check is 404, a bad uptime 400, other methods 405', async () => {
  const cases: Array<[string, number]> = [
    ['/badge/nope.svg', 404],
    ['/badge/nope.json', 404],
    ['/badge/web.png', 404],
    ['/badge/web', 404],
    ['/badge/.svg', 404],
    ['/badge/%E0%A4%A.svg', 404],
    ['/badge/a/b.svg', 200],
    ['/badge/web.svg?uptime=1h', 400],
    ['/badge/web.svg?uptime=', 400],
    ['/badge/web.json?uptime=90d', 400],
    ['/badge.svg?uptime=24h', 400],
  ];
  for (const [path, status] of cases) {
    const reply = await request(`${service.url}${path}`);
    assert.equal(reply.status, status, `${path}: ${reply.body}`);
    if (status !== 200) assert.equal(typeof (JSON.parse(reply.body) as { error: unknown }).error, 'string', path);
  }
  const post = await request(`${service.url}/badge/web.svg`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD, OPTIONS');
});

test('with AUTH_TOKEN a badge needs the token, as /status does', async () => {
  for (const path of ['/badge.svg', '/badge/web.svg', '/badge/web.json', '/badge/nope.svg']) {
    const reply = await request(`${guarded.url}${path}`);
    assert.equal(reply.status, 401, path);
    assert.match(String(reply.headers['www-authenticate']), /^Bearer/);
  }
  assert.equal((await request(`${guarded.url}/badge/web.svg?token=${TOKEN}`)).status, 200);
  const header = await request(`${guarded.url}/badge.svg`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(header.status, 200);
  assertSafeSvg(header.body);
});
