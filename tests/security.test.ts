// AUTH_TOKEN and CORS_ORIGIN: the read token guards /events, /status, /history, /metrics
// and badges, as a Bearer header, ?token= or the page's cookie, compared in constant time
// and never logged; CORS headers name only allowed origins, and preflight allows
// Last-Event-ID; each route answers 405 with its own Allow.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { type InProcess, openStream, request, startInProcess, withDeadline } from './helpers.ts';

const TOKEN = 'T0ken-with.symbols~_9';

let service: InProcess;
before(async () => {
  service = await startInProcess({ AUTH_TOKEN: TOKEN, LOG_LEVEL: 'debug', STATUS_INTERVAL_MS: '500' });
});
after(() => service.close());

test('refuses /events, /status and /metrics without the token: 401 with WWW-Authenticate: Bearer', async () => {
  for (const path of ['/events', '/status', '/metrics']) {
    const reply = await request(`${service.url}${path}`);
    assert.equal(reply.status, 401, path);
    assert.match(String(reply.headers['www-authenticate']), /^Bearer\b/);
    assert.deepEqual(JSON.parse(reply.body), { error: 'unauthorized' });
  }
});

test('refuses wrong tokens, including ones of other lengths, multibyte and badly encoded ones', async () => {
  const wrong = ['x', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), 'é✓😀', '%ZZ', '%C3%28', '', ' '];
  for (const token of wrong) {
    assert.equal((await request(`${service.url}/status?token=${encodeURIComponent(token)}`)).status, 401, token);
    assert.equal((await request(`${service.url}/status?token=${token}`)).status, 401, token);
  }
  for (const header of [`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN, 'Bearer', 'Bearer  ', `Bearer ${TOKEN} extra`]) {
    assert.equal((await request(`${service.url}/status`, { headers: { authorization: header } })).status, 401, header);
  }
});

test('accepts the token as a Bearer header (any case of the scheme) or as ?token=', async () => {
  assert.equal((await request(`${service.url}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal(
    (await request(`${service.url}/metrics`, { headers: { authorization: `bearer ${TOKEN}` } })).status,
    200,
  );
  assert.equal((await request(`${service.url}/status?token=${encodeURIComponent(TOKEN)}`)).status, 200);
  const stream = await openStream(`${service.url}/events?token=${encodeURIComponent(TOKEN)}`);
  assert.equal(stream.status, 200);
  await stream.waitForEvents(1);
  stream.close();
});

test('the eventsource client streams with ?token=', async () => {
  const source = new EventSource(`${service.url}/events?token=${encodeURIComponent(TOKEN)}`);
  try {
    const event = await withDeadline(
      new Promise<MessageEvent>((resolve, reject) => {
        source.onmessage = resolve;
        source.onerror = () => reject(new Error('eventsource error'));
      }),
      5000,
      'a message',
    );
    assert.equal(JSON.parse(event.data).status, 'up');
  } finally {
    source.close();
  }
});

test('leaves /, /healthz and /readyz open', async () => {
  for (const path of ['/', '/healthz', '/readyz'])
    assert.equal((await request(`${service.url}${path}`)).status, 200, path);
});

test('never writes the token to a log line, not even in debug lines about streams', async () => {
  await request(`${service.url}/nope?token=${TOKEN}`);
  await request(`${service.url}/status?token=${TOKEN}`, { method: 'DELETE' });
  // Debug lines for the streams of the tests above: they too must not carry the token.
  assert.ok(service.logs.some((l) => l.level === 20 && l.msg === 'stream opened'));
  assert.ok(service.logs.some((l) => l.level === 20 && l.msg === 'stream closed' && l.reason === 'client'));
  for (const line of service.logs)
    assert.doesNotMatch(JSON.stringify(line), new RegExp(TOKEN.replace(/[.~]/g, '\\$&')));
});

test('sends no CORS headers when CORS_ORIGIN is empty', async () => {
  const reply = await request(`${service.url}/healthz`, { headers: { origin: 'https://a.example' } });
  assert.equal(reply.headers['access-control-allow-origin'], undefined);
  assert.equal(reply.headers.vary, undefined);
});

test('CORS_ORIGIN=* allows any origin, on JSON and on streams', async () => {
  const open = await startInProcess({ CORS_ORIGIN: '*' });
  try {
    const reply = await request(`${open.url}/status`, { headers: { origin: 'https://any.example' } });
    assert.equal(reply.headers['access-control-allow-origin'], '*');
    const stream = await openStream(`${open.url}/events`, { origin: 'https://any.example' });
    assert.equal(stream.headers['access-control-allow-origin'], '*');
    assert.equal(stream.headers.vary, 'Origin');
    stream.close();
  } finally {
    await open.close();
  }
});

test('a CORS_ORIGIN list echoes only a listed origin, with Vary: Origin, and preflight allows Last-Event-ID', async () => {
  const listed = await startInProcess({ CORS_ORIGIN: 'https://a.example,http://localhost:3000', AUTH_TOKEN: TOKEN });
  try {
    const ok = await request(`${listed.url}/healthz`, { headers: { origin: 'http://localhost:3000' } });
    assert.equal(ok.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.equal(ok.headers.vary, 'Origin');
    const other = await request(`${listed.url}/healthz`, { headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    assert.equal(other.headers.vary, 'Origin');
    // 401s carry CORS headers too, so the page can read why it failed.
    const denied = await request(`${listed.url}/events`, { headers: { origin: 'https://a.example' } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], 'https://a.example');

    const preflight = await request(`${listed.url}/events`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://a.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'last-event-id',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://a.example');
    assert.match(String(preflight.headers['access-control-allow-headers']), /(^|, )Last-Event-ID(,|$)/);
    assert.match(String(preflight.headers['access-control-allow-methods']), /GET/);
    assert.equal(preflight.body, '');
  } finally {
    await listed.close();
  }
});

test('OPTIONS without CORS answers 204 with Allow', async () => {
  const reply = await request(`${service.url}/status`, { method: 'OPTIONS' });
  assert.equal(reply.status, 204);
  assert.equal(reply.headers.allow, 'GET, HEAD, OPTIONS');
  assert.equal(reply.headers['access-control-allow-origin'], undefined);
});

test('the page carries a CSP that allows its own inline script and style by hash, and no referrer', async () => {
  const page = await startInProcess({}, '<!doctype html><style>p{}</style><p>x</p><script>1</script>');
  try {
    const reply = await request(`${page.url}/`);
    assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8');
    const csp = String(reply.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]{44}'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]{44}'/);
    assert.match(csp, /connect-src 'self'/);
    assert.equal(reply.headers['referrer-policy'], 'no-referrer');
    assert.equal(reply.headers['x-content-type-options'], 'nosniff');
  } finally {
    await page.close();
  }
});

test('refuses /history and the badges without the token too', async () => {
  for (const path of ['/history', '/badge.svg', '/badge/x.json'])
    assert.equal((await request(`${service.url}${path}`)).status, 401, path);
  assert.equal((await request(`${service.url}/history?token=${TOKEN}`)).status, 200);
});

test('the page trades a valid ?token= for an HttpOnly, SameSite=Strict cookie that the read routes accept', async () => {
  const page = await request(`${service.url}/?token=${encodeURIComponent(TOKEN)}`);
  assert.equal(page.status, 200);
  const cookie = String(page.headers['set-cookie']);
  assert.match(cookie, /^status_stream_token=[^;]+; HttpOnly; SameSite=Strict$/);
  // No Path: the browser's default is the page's directory, right under a proxy's sub-path too.
  assert.doesNotMatch(cookie, /Path=|Secure/);
  const pair = cookie.split(';')[0];
  assert.equal((await request(`${service.url}/status`, { headers: { cookie: `other=1; ${pair}` } })).status, 200);
  assert.equal(
    (await request(`${service.url}/status`, { headers: { cookie: 'status_stream_token=nope' } })).status,
    401,
  );
  // Behind a TLS-terminating proxy the cookie is Secure.
  const secure = await request(`${service.url}/?token=${TOKEN}`, { headers: { 'x-forwarded-proto': 'https' } });
  assert.match(String(secure.headers['set-cookie']), /; Secure$/);
  // A wrong token sets nothing; the page itself is public.
  const wrong = await request(`${service.url}/?token=wrong`);
  assert.equal(wrong.status, 200);
  assert.equal(wrong.headers['set-cookie'], undefined);
});

test("a known path with a method it does not take answers 405 with that route's own Allow", async () => {
  const status = await request(`${service.url}/status`, { method: 'POST' });
  assert.equal(status.status, 405);
  assert.equal(status.headers.allow, 'GET, HEAD, OPTIONS');
  const options = await request(`${service.url}/history`, { method: 'OPTIONS' });
  assert.equal(options.status, 204);
  assert.equal(options.headers.allow, 'GET, HEAD, OPTIONS');
});

test('the write API does not exist without PUBLISH_TOKEN, and the read token never grants a write', async () => {
  assert.equal(
    (await request(`${service.url}/publish`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status,
    404,
  );
  const writer = await startInProcess({ AUTH_TOKEN: TOKEN, PUBLISH_TOKEN: 'pub-token' });
  try {
    const get = await request(`${writer.url}/publish`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST, OPTIONS');
    const announcement = await request(`${writer.url}/announcement`, { method: 'GET' });
    assert.equal(announcement.headers.allow, 'PUT, DELETE, OPTIONS');
    const byReader = await request(`${writer.url}/announcement`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(byReader.status, 401);
    const byQuery = await request(`${writer.url}/announcement?token=pub-token`, { method: 'DELETE' });
    assert.equal(byQuery.status, 401, 'writes take the header only');
    const byWriter = await request(`${writer.url}/announcement`, {
      method: 'DELETE',
      headers: { authorization: 'Bearer pub-token' },
    });
    assert.equal(byWriter.status, 204);
  } finally {
    await writer.close();
  }
});
