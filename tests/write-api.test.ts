// The write API against the real service: every refused write (404 when off, 401, 405, 413,
// 415, 400) and that it changed nothing; app events through the real EventSource client,
// resume and filters; push checks fed by a cron-like pusher that stops; announcements and
// maintenance against a local webhook receiver; push state across a restart; the write token
// never in a log line. See docs/write-api.md.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { MAX_BODY_BYTES } from '../http/body.ts';
import {
  freePort,
  type InProcess,
  metricValue,
  openStream,
  type Receiver,
  type Reply,
  request,
  type SseClient,
  type SseEvent,
  sleep,
  startInProcess,
  startReceiver,
  startService,
  waitFor,
  withDeadline,
} from './helpers.ts';

const PUBLISH_TOKEN = 'publish-7Hq2-only-for-writes';
const READ_TOKEN = 'read-Zk41-only-for-reads';
const WRITE_HEADERS = { authorization: `Bearer ${PUBLISH_TOKEN}`, 'content-type': 'application/json' };
const HOUR_MS = 3_600_000;

const scratch = mkdtempSync(join(tmpdir(), 'status-stream-write-api-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A CONFIG_FILE in the scratch directory. */
function configFile(name: string, content: unknown): string {
  const path = join(scratch, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

// ---------------------------------------------------------------- clients

/** One request as curl sends it: the body (if any) with its Content-Length; the whole answer is read. */
function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Reply> {
  return request(`${base}${path}`, { method, headers, body }, 15_000);
}

/** A write with the publish token and a JSON body. */
const write = (base: string, method: string, path: string, body?: unknown): Promise<Reply> =>
  call(base, method, path, WRITE_HEADERS, body === undefined ? undefined : JSON.stringify(body));

/**
 * Raw bytes over one TCP connection: the head, then the body in `pieces` (a few ms apart,
 * stopping when the server closes). Resolves with the answer once it is whole, or with
 * what arrived when the server closed the connection.
 */
function rawExchange(port: number, head: string, pieces: readonly Buffer[] = []): Promise<Reply> {
  return withDeadline(
    new Promise<Reply>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let received = Buffer.alloc(0);
      const done = (): void => {
        socket.destroy();
        resolve(parseAnswer(received.toString('utf8')));
      };
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const answer = parseAnswer(received.toString('utf8'));
        if (answer.status !== 0 && Buffer.byteLength(answer.body) >= Number(answer.headers['content-length'] ?? 0))
          done();
      });
      // The server may close while the body is still being sent: what it answered is the result.
      socket.on('error', () => {});
      socket.on('close', done);
      socket.write(head);
      void (async () => {
        for (const piece of pieces) {
          if (socket.destroyed || socket.writableEnded) return;
          socket.write(piece);
          await sleep(2);
        }
      })();
    }),
    15_000,
    `raw ${head.split('\r\n')[0]}`,
  );
}

function parseAnswer(text: string): Reply {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return { status: 0, headers: {}, body: '' };
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: http.IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/** Chunked transfer coding of `body` in chunks of `size` bytes, and the last chunk. */
function chunked(body: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const chunk = body.subarray(at, at + size);
    pieces.push(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
  }
  pieces.push(Buffer.from('0\r\n\r\n'));
  return pieces;
}

/** The sequence number of an id "<boot id>-<sequence>". */
const seqOf = (id: string): number => Number(id.slice(id.lastIndexOf('-') + 1));

const snapshots = (client: SseClient): SseEvent[] => client.events.filter((e) => e.event === undefined);
const named = (client: SseClient, event: string): SseEvent[] => client.events.filter((e) => e.event === event);

/** Asserts a refusal: the status, a one-line `{"error"}` body that does not quote `canary`. */
function assertRefused(answer: Reply, status: number, what: string, canary = 'CANARY'): string {
  assert.equal(answer.status, status, `${what}: ${answer.status} ${answer.body}`);
  assert.match(String(answer.headers['content-type']), /^application\/json/, what);
  const parsed = JSON.parse(answer.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed), ['error'], what);
  const reason = parsed.error as string;
  assert.match(reason, /^[^\r\n]{1,200}$/, `${what}: one short line`);
  assert.ok(!answer.body.includes(canary), `${what}: the answer quotes the input: ${answer.body}`);
  return reason;
}

// ---------------------------------------------------------------- off

test('without PUBLISH_TOKEN the write routes do not exist: every method is a 404', async () => {
  const off = await startInProcess({ STATUS_INTERVAL_MS: '60000' });
  try {
    for (const [method, path] of [
      ['POST', '/publish'],
      ['GET', '/publish'],
      ['OPTIONS', '/publish'],
      ['POST', '/push/nightly-backup'],
      ['PUT', '/announcement'],
      ['DELETE', '/announcement'],
    ] as const) {
      const answer = await call(
        off.url,
        method,
        path,
        WRITE_HEADERS,
        method === 'POST' || method === 'PUT' ? '{}' : undefined,
      );
      assert.equal(answer.status, 404, `${method} ${path}`);
      assert.deepEqual(JSON.parse(answer.body), { error: 'not found' });
      assert.equal(answer.headers.allow, undefined);
    }
    assert.equal((await call(off.url, 'GET', '/status')).status, 200);
  } finally {
    await off.close();
  }
});

// ---------------------------------------------------------------- the main service

describe('the write API of a service with PUBLISH_TOKEN and AUTH_TOKEN', { timeout: 120_000 }, () => {
  let svc: InProcess;
  const read = (path: string): Promise<Reply> =>
    call(svc.url, 'GET', `${path}${path.includes('?') ? '&' : '?'}token=${READ_TOKEN}`);
  const status = async (): Promise<Record<string, unknown>> =>
    JSON.parse((await read('/status')).body) as Record<string, unknown>;
  const metrics = async (): Promise<string> => (await read('/metrics')).body;
  const stream = (query = ''): Promise<SseClient> => openStream(`${svc.url}/events?token=${READ_TOKEN}${query}`);

  before(async () => {
    const closedPort = await freePort();
    svc = await startInProcess({
      PUBLISH_TOKEN,
      AUTH_TOKEN: READ_TOKEN,
      // No round and no heartbeat while the suite runs, however slow the machine: every
      // snapshot a stream gets was asked for.
      STATUS_INTERVAL_MS: '600000',
      HEARTBEAT_MS: '0',
      RETRY_MS: '500',
      CHECKS: `db=tcp://127.0.0.1:${closedPort}`,
      CONFIG_FILE: configFile('main.json', {
        checks: [
          { name: 'nightly-backup', url: 'push://', withinMs: 24 * HOUR_MS },
          { name: 'db backup', url: 'push://', withinMs: 24 * HOUR_MS },
        ],
      }),
    });
    await status(); // the first snapshot exists
  });
  after(async () => {
    await svc?.close();
  });

  test('a write without the bearer token, with a wrong one, with the read token or as ?token= is a 401', async () => {
    const body = '{"event":"deploy","data":1}';
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, Record<string, string>, string]> = [
      ['no Authorization', json, '/publish'],
      ['a wrong token', { ...json, authorization: 'Bearer not-the-token' }, '/publish'],
      ['the read token', { ...json, authorization: `Bearer ${READ_TOKEN}` }, '/publish'],
      ['the write token as a query parameter', json, `/publish?token=${PUBLISH_TOKEN}`],
      [
        'the read token in the header, the write token in the query',
        { ...json, authorization: `Bearer ${READ_TOKEN}` },
        `/publish?token=${PUBLISH_TOKEN}`,
      ],
      [
        'the write token as Basic credentials',
        { ...json, authorization: `Basic ${Buffer.from(`x:${PUBLISH_TOKEN}`).toString('base64')}` },
        '/publish',
      ],
      ['the write token with a suffix', { ...json, authorization: `Bearer ${PUBLISH_TOKEN}x` }, '/publish'],
    ];
    for (const [what, headers, path] of cases) {
      const answer = await call(svc.url, 'POST', path, headers, body);
      assertRefused(answer, 401, what);
      assert.match(String(answer.headers['www-authenticate']), /^Bearer /, what);
    }
    for (const [method, path] of [
      ['POST', '/push/nightly-backup'],
      ['PUT', '/announcement'],
      ['DELETE', '/announcement'],
    ]) {
      const answer = await call(svc.url, method!, path!, { authorization: `Bearer ${READ_TOKEN}` });
      assertRefused(answer, 401, `${method} ${path} with the read token`);
    }
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    const lower = await call(svc.url, 'POST', '/publish', { ...json, authorization: `bearer ${PUBLISH_TOKEN}` }, body);
    assert.equal(lower.status, 202);
    const upper = await call(
      svc.url,
      'POST',
      '/publish',
      { ...json, authorization: `Bearer ${PUBLISH_TOKEN.toUpperCase()}` },
      body,
    );
    assert.equal(upper.status, 401);
  });

  test("a write route answers another method with 405 and that route's Allow, and OPTIONS with 204", async () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/publish', 'POST, OPTIONS'],
      ['HEAD', '/publish', 'POST, OPTIONS'],
      ['PUT', '/publish', 'POST, OPTIONS'],
      ['GET', '/push/nightly-backup', 'POST, OPTIONS'],
      ['DELETE', '/push/nightly-backup', 'POST, OPTIONS'],
      ['GET', '/announcement', 'PUT, DELETE, OPTIONS'],
      ['POST', '/announcement', 'PUT, DELETE, OPTIONS'],
    ];
    for (const [method, path, allow] of cases) {
      const answer = await call(svc.url, method, path, WRITE_HEADERS);
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.equal(answer.headers.allow, allow, `${method} ${path}`);
      if (method !== 'HEAD') assert.deepEqual(JSON.parse(answer.body), { error: 'method not allowed' });
      const options = await call(svc.url, 'OPTIONS', path);
      assert.equal(options.status, 204, `OPTIONS ${path}`);
      assert.equal(options.headers.allow, allow, `OPTIONS ${path}`);
    }
  });

  test('a body that is not declared application/json is a 415; a charset or other case is fine', async () => {
    const body = '{"event":"deploy","data":"CANARY"}';
    const auth = { authorization: `Bearer ${PUBLISH_TOKEN}` };
    for (const type of [
      undefined,
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonp',
      'application/json-seq',
    ]) {
      const headers = type === undefined ? auth : { ...auth, 'content-type': type };
      for (const [method, path] of [
        ['POST', '/publish'],
        ['PUT', '/announcement'],
        ['POST', '/push/nightly-backup'],
      ]) {
        assertRefused(
          await call(svc.url, method!, path!, headers, body),
          415,
          `${method} ${path} as ${type ?? 'nothing'}`,
        );
      }
    }
    for (const type of ['application/json; charset=utf-8', 'Application/JSON', 'application/json ; charset="UTF-8"']) {
      const answer = await call(
        svc.url,
        'POST',
        '/publish',
        { ...auth, 'content-type': type },
        '{"event":"deploy","data":1}',
      );
      assert.equal(answer.status, 202, type);
    }
  });

  test('a body over 64 KiB is a 413, declared or chunked without a length; exactly 64 KiB is taken', async () => {
    const head = (length: string): string =>
      `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${PUBLISH_TOKEN}\r\n` +
      `Content-Type: application/json\r\n${length}\r\n`;
    const padded = (bytes: number): Buffer => {
      const start = '{"event":"big","data":"';
      return Buffer.from(`${start}${'x'.repeat(bytes - start.length - 2)}"}`);
    };
    const over = padded(MAX_BODY_BYTES + 1);
    const declared = await rawExchange(svc.port, head(`Content-Length: ${over.length}\r\n`), [over]);
    assertRefused(declared, 413, 'declared');
    assert.equal(declared.headers.connection, 'close');
    // Declared too large and never sent: refused from the head alone.
    assertRefused(await rawExchange(svc.port, head('Content-Length: 10000000\r\n')), 413, 'declared, not sent');
    for (const size of [1000, 16_384, 70_000]) {
      const answer = await rawExchange(svc.port, head('Transfer-Encoding: chunked\r\n'), chunked(over, size));
      assertRefused(answer, 413, `chunked in ${size}-byte chunks`);
    }
    const exact = padded(MAX_BODY_BYTES);
    assert.equal(exact.length, 65_536);
    const taken = await rawExchange(svc.port, head(`Content-Length: ${exact.length}\r\n`), [exact]);
    assert.equal(taken.status, 202, taken.body);
    const takenChunked = await rawExchange(svc.port, head('Transfer-Encoding: chunked\r\n'), chunked(exact, 4096));
    assert.equal(takenChunked.status, 202, takenChunked.body);
  });

  test('an app event whose data grows past 64 KiB as one line of JSON is a 413', async () => {
    // 1e20 is 4 bytes in the body and 21 once serialized: the event must not outgrow the body's bound.
    const numbers = `[${Array.from({ length: 12_000 }, () => '1e20').join(',')}]`;
    const body = `{"event":"big","data":${numbers}}`;
    assert.ok(body.length < MAX_BODY_BYTES);
    assertRefused(await call(svc.url, 'POST', '/publish', WRITE_HEADERS, body), 413, 'expanding data');
  });

  test('a malformed write is a 400 with a one-line reason that does not quote the input', async () => {
    const over = (n: number): string => `CANARY${'x'.repeat(n - 6)}`;
    const cases: Array<[string, string, string | Buffer, RegExp]> = [
      ['/publish', 'malformed JSON', '{"event":"deploy","data":"CANARY"', /not valid JSON/],
      ['/publish', 'bytes that are not UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), /not valid JSON/],
      ['/publish', 'an empty body', '', /not valid JSON/],
      ['/publish', 'an array', '["CANARY"]', /JSON object/],
      ['/publish', 'a string', '"CANARY"', /JSON object/],
      ['/publish', 'null', 'null', /JSON object/],
      ['/publish', 'an unknown field', '{"event":"deploy","data":1,"CANARY":1}', /unknown field.*event, data/],
      ['/publish', 'a name with a space', '{"event":"CANARY deploy","data":1}', /event must match/],
      ['/publish', 'a name that starts with a digit', '{"event":"1CANARY","data":1}', /event must match/],
      ['/publish', 'a name of 65 characters', `{"event":"${over(65)}","data":1}`, /event must match/],
      ['/publish', 'a name that is not a string', '{"event":12345,"data":1}', /event must match/],
      ['/publish', 'no name', '{"data":"CANARY"}', /event must match/],
      [
        '/publish',
        'the reserved name message',
        '{"event":"message","data":"CANARY"}',
        /not be message, change, done or reset/,
      ],
      ['/publish', 'the reserved name change', '{"event":"change","data":"CANARY"}', /not be message/],
      ['/publish', 'the reserved name done', '{"event":"done","data":"CANARY"}', /not be message/],
      ['/publish', 'the reserved name reset', '{"event":"reset","data":"CANARY"}', /not be message/],
      ['/publish', 'no data', '{"event":"deploy"}', /data is required/],
      [
        '/push/nightly-backup',
        'a push status that is not up or down',
        '{"status":"CANARY"}',
        /status must be "up" or "down"/,
      ],
      ['/push/nightly-backup', 'the push status degraded', '{"status":"degraded"}', /status must be/],
      [
        '/push/nightly-backup',
        'a push msg over 200 characters',
        `{"msg":"${over(201)}"}`,
        /msg must be a string of at most 200/,
      ],
      ['/push/nightly-backup', 'a push msg that is not a string', '{"msg":{"CANARY":1}}', /msg must be a string/],
      ['/push/nightly-backup', 'an unknown push field', '{"status":"up","CANARY":1}', /unknown field.*status, msg/],
      ['/announcement', 'no text', '{"level":"info"}', /text must be a non-empty string of at most 500/],
      ['/announcement', 'an empty text', '{"text":""}', /text must be a non-empty/],
      ['/announcement', 'a blank text', '{"text":"  \\n "}', /text must be a non-empty/],
      ['/announcement', 'a text over 500 characters', `{"text":"${over(501)}"}`, /at most 500 characters/],
      ['/announcement', 'a text that is not a string', '{"text":["CANARY"]}', /text must be/],
      ['/announcement', 'a bad level', '{"text":"hello","level":"CANARY"}', /level must be info, warning or critical/],
      ['/announcement', 'a null level', '{"text":"hello","level":null}', /level must be/],
      [
        '/announcement',
        'maintenance as a string',
        '{"text":"hello","maintenance":"true"}',
        /maintenance must be true or false/,
      ],
      [
        '/announcement',
        'maintenance as a number',
        '{"text":"hello","maintenance":1}',
        /maintenance must be true or false/,
      ],
      ['/announcement', 'an unknown announcement field', '{"text":"hello","CANARY":true}', /unknown field/],
    ];
    for (const [path, what, body, reason] of cases) {
      const method = path === '/announcement' ? 'PUT' : 'POST';
      const answer = await call(svc.url, method, path, WRITE_HEADERS, body);
      assert.match(assertRefused(answer, 400, what), reason, what);
      // The rest of a refused body is never read as a next request.
      assert.equal(answer.headers.connection, 'close', what);
    }
  });

  test('the limits are inclusive: a 200-character msg and a 500-character text are taken', async () => {
    assert.equal(
      (await write(svc.url, 'POST', '/push/db%20backup', { status: 'up', msg: 'm'.repeat(200) })).status,
      204,
    );
    const put = await write(svc.url, 'PUT', '/announcement', { text: 't'.repeat(500) });
    assert.equal(put.status, 200);
    assert.equal((JSON.parse(put.body) as { text: string }).text.length, 500);
    assert.equal((await write(svc.url, 'DELETE', '/announcement')).status, 204);
  });

  test('a refused write changes nothing: no event id is used, the announcement and the push log stay', async () => {
    const announcement = await write(svc.url, 'PUT', '/announcement', { text: 'Payments are slow', level: 'warning' });
    assert.equal(announcement.status, 200);
    const shown = (await status()).announcement;
    assert.deepEqual(shown, JSON.parse(announcement.body));
    const client = await stream();
    try {
      const before = await metrics();
      const first = await write(svc.url, 'POST', '/publish', { event: 'probe', data: 1 });
      assert.equal(first.status, 202);
      const firstId = (JSON.parse(first.body) as { id: string }).id;
      await client.waitFor((b) => b.id === firstId, 1, 10_000, 'the first probe');

      let refusedPublishes = 0;
      const publish = async (
        headers: Record<string, string>,
        body: string | Buffer,
        expected: number,
      ): Promise<void> => {
        const answer = await call(svc.url, 'POST', '/publish', headers, body);
        assert.equal(answer.status, expected, `${body.toString().slice(0, 60)}: ${answer.body}`);
        if (expected !== 401) refusedPublishes++;
      };
      await publish(WRITE_HEADERS, '{"event":"probe","data":', 400);
      await publish(WRITE_HEADERS, '{"event":"change","data":1}', 400);
      await publish(WRITE_HEADERS, '{"event":"probe"}', 400);
      await publish(WRITE_HEADERS, '{"event":"probe","data":1,"extra":1}', 400);
      await publish(
        { authorization: WRITE_HEADERS.authorization, 'content-type': 'text/plain' },
        '{"event":"probe","data":1}',
        415,
      );
      await publish(WRITE_HEADERS, `{"event":"probe","data":"${'x'.repeat(MAX_BODY_BYTES)}"}`, 413);
      await publish({ 'content-type': 'application/json' }, '{"event":"probe","data":1}', 401);
      for (const body of [
        { text: '' },
        { text: 'Fixed', level: 'urgent' },
        { text: 'Fixed', maintenance: 'yes' },
        { text: 'x'.repeat(501) },
      ]) {
        assert.equal((await write(svc.url, 'PUT', '/announcement', body)).status, 400);
      }
      assert.equal(
        (await call(svc.url, 'PUT', '/announcement', { 'content-type': 'application/json' }, '{"text":"x"}')).status,
        401,
      );
      assert.equal(
        (await call(svc.url, 'DELETE', '/announcement', { authorization: `Bearer ${READ_TOKEN}` })).status,
        401,
      );
      assert.equal(
        (await write(svc.url, 'POST', '/push/nightly-backup', { status: 'down', msg: 'm'.repeat(201) })).status,
        400,
      );
      assert.equal((await write(svc.url, 'POST', '/push/nightly-backup', { status: 'sideways' })).status, 400);

      const second = await write(svc.url, 'POST', '/publish', { event: 'probe', data: 2 });
      const secondId = (JSON.parse(second.body) as { id: string }).id;
      await client.waitFor((b) => b.id === secondId, 1, 10_000, 'the second probe');
      // Only what the service itself sent may lie between the two (a round, were one due).
      const between = client.events.filter((e) => seqOf(e.id!) > seqOf(firstId) && seqOf(e.id!) < seqOf(secondId));
      assert.equal(seqOf(secondId) - seqOf(firstId) - 1, between.length);
      assert.ok(
        between.every((e) => e.event === undefined || e.event === 'change'),
        JSON.stringify(between),
      );
      assert.deepEqual(
        named(client, 'probe').map((e) => e.data),
        ['1', '2'],
      );

      const checks = (await status()).checks as Array<{ name: string; state: string; detail: string }>;
      assert.equal(checks.find((c) => c.name === 'nightly-backup')?.detail, 'no push yet');
      assert.deepEqual((await status()).announcement, shown);
      const now = await metrics();
      const sample = (text: string, name: string): number => metricValue(text, name, 0);
      assert.equal(
        sample(now, 'status_publish_total{result="accepted"}') -
          sample(before, 'status_publish_total{result="accepted"}'),
        2,
      );
      assert.equal(
        sample(now, 'status_publish_total{result="refused"}') -
          sample(before, 'status_publish_total{result="refused"}'),
        refusedPublishes,
      );
      assert.equal(sample(now, 'status_push_total{check="nightly-backup"}'), 0);
    } finally {
      client.close();
      await write(svc.url, 'DELETE', '/announcement');
    }
  });

  test('a push needs no body: none, an empty one or an empty chunked one is an up push', async () => {
    const head = (framing: string, type = 'Content-Type: application/json\r\n'): string =>
      `POST /push/db%20backup HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${PUBLISH_TOKEN}\r\n` +
      `${type}${framing}\r\n`;
    const before = metricValue(await metrics(), 'status_push_total{check="db backup"}', 0);
    assert.equal((await rawExchange(svc.port, head('', ''))).status, 204);
    assert.equal((await rawExchange(svc.port, head('Content-Length: 0\r\n', ''))).status, 204);
    assert.equal((await rawExchange(svc.port, head('Content-Length: 0\r\n'))).status, 204);
    assert.equal(
      (await rawExchange(svc.port, head('Transfer-Encoding: chunked\r\n'), [Buffer.from('0\r\n\r\n')])).status,
      204,
    );
    assert.equal((await rawExchange(svc.port, head('Content-Length: 2\r\n'), [Buffer.from('{}')])).status, 204);
    // Chunked and empty with no Content-Type at all: still no body.
    assert.equal(
      (await rawExchange(svc.port, head('Transfer-Encoding: chunked\r\n', ''), [Buffer.from('0\r\n\r\n')])).status,
      204,
    );
    // A body that is there must say it is JSON.
    const untyped = await rawExchange(svc.port, head('Transfer-Encoding: chunked\r\n', ''), [
      Buffer.from('2\r\n{}\r\n0\r\n\r\n'),
    ]);
    assert.equal(untyped.status, 415);
    assert.equal(metricValue(await metrics(), 'status_push_total{check="db backup"}', 0) - before, 6);
  });

  test('a push to an unknown check or to a check that is not a push check is a 404', async () => {
    for (const path of [
      '/push/nope',
      '/push/db',
      '/push/',
      '/push/%E0%A4%A',
      '/push/nightly-backup/x',
      '/push/NIGHTLY-BACKUP',
    ]) {
      const answer = await write(svc.url, 'POST', path);
      assert.equal(answer.status, 404, `${path}: ${answer.body}`);
      assert.deepEqual(Object.keys(JSON.parse(answer.body) as object), ['error']);
    }
    // Without the token a name is neither confirmed nor denied.
    assert.equal((await call(svc.url, 'POST', '/push/nope')).status, 401);
    assert.equal((await call(svc.url, 'POST', '/push/nightly-backup')).status, 401);
    // A name with a space is percent-encoded in the path.
    assert.equal(
      (await call(svc.url, 'POST', '/push/db%20backup', { authorization: `Bearer ${PUBLISH_TOKEN}` })).status,
      204,
    );
  });

  test('the eventsource client receives a published event by name, its lastEventId the id of the 202', async () => {
    const es = new EventSource(`${svc.url}/events?token=${READ_TOKEN}`);
    try {
      const deploys: MessageEvent[] = [];
      es.addEventListener('deploy', (event) => deploys.push(event));
      const messages: MessageEvent[] = [];
      es.onmessage = (event) => messages.push(event);
      await waitFor(() => messages.length > 0, 10_000, 'the first snapshot');
      const answers: Array<{ id: string }> = [];
      const payloads = [
        { version: '1.4.2', by: 'ci' },
        'a plain string',
        [1, 2, 3],
        null,
        { text: 'two\nlines\r\nand a \u2028' },
      ];
      for (const data of payloads) {
        const answer = await write(svc.url, 'POST', '/publish', { event: 'deploy', data });
        assert.equal(answer.status, 202);
        assert.match(String(answer.headers['content-type']), /^application\/json/);
        answers.push(JSON.parse(answer.body) as { id: string });
      }
      await waitFor(() => deploys.length >= payloads.length, 10_000, 'the deploy events');
      assert.deepEqual(
        deploys.map((e) => e.lastEventId),
        answers.map((a) => a.id),
      );
      assert.deepEqual(
        deploys.map((e) => JSON.parse(e.data) as unknown),
        payloads,
      );
      assert.ok(deploys.every((e) => e.type === 'deploy'));
      // App events are never taken for snapshots.
      assert.ok(messages.every((m) => 'checks' in (JSON.parse(m.data) as object)));
    } finally {
      es.close();
    }
  });

  test('an app event is never the snapshot a new stream starts with, nor the answer of /status', async () => {
    await write(svc.url, 'POST', '/publish', { event: 'deploy', data: { version: 'latest' } });
    const client = await stream();
    try {
      const [first] = await client.waitForEvents(1);
      assert.equal(first!.event, undefined);
      assert.ok('checks' in (JSON.parse(first!.data!) as object));
      assert.ok('checks' in (await status()));
    } finally {
      client.close();
    }
  });

  test('a client resuming with the last id it saw gets the later app events and only the newest snapshot', async () => {
    const first = await stream();
    let lastSeen: string;
    try {
      const answer = await write(svc.url, 'POST', '/publish', { event: 'deploy', data: 'a' });
      lastSeen = (JSON.parse(answer.body) as { id: string }).id;
      await first.waitFor((b) => b.id === lastSeen, 1, 10_000, 'deploy a');
    } finally {
      first.close();
    }
    // Meanwhile: two app events and two snapshots (an announcement cleared sends one each time).
    const ids: string[] = [];
    for (const step of ['b', 'snapshot', 'c', 'snapshot']) {
      if (step === 'snapshot') assert.equal((await write(svc.url, 'DELETE', '/announcement')).status, 204);
      else
        ids.push(
          (
            JSON.parse((await write(svc.url, 'POST', '/publish', { event: 'deploy', data: step })).body) as {
              id: string;
            }
          ).id,
        );
    }
    const newest = (await read('/status')).body;
    for (const how of ['header', 'query'] as const) {
      const resumed =
        how === 'header'
          ? await openStream(`${svc.url}/events?token=${READ_TOKEN}`, { 'last-event-id': lastSeen })
          : await stream(`&lastEventId=${encodeURIComponent(lastSeen)}`);
      try {
        await resumed.waitForEvents(3);
        await sleep(200);
        const events = resumed.events;
        assert.deepEqual(
          events.map((e) => `${e.event ?? 'message'}:${e.event === undefined ? '' : e.data}`),
          ['deploy:"b"', 'deploy:"c"', 'message:'],
          how,
        );
        assert.deepEqual(
          events.slice(0, 2).map((e) => e.id),
          ids,
          how,
        );
        assert.equal(events[2]!.data, newest, `${how}: the newest snapshot`);
        assert.ok(seqOf(events[2]!.id!) > seqOf(ids[1]!), how);
        assert.ok(!events.some((e) => e.id === lastSeen), `${how}: the named event itself is not sent again`);
      } finally {
        resumed.close();
      }
    }
  });

  test('the eventsource client resumes across publishes after its connection is cut', async () => {
    const es = new EventSource(`${svc.url}/events?token=${READ_TOKEN}`);
    try {
      const got: MessageEvent[] = [];
      es.addEventListener('deploy', (event) => got.push(event));
      let opened = 0;
      es.onopen = () => opened++;
      await waitFor(() => opened === 1, 10_000, 'the stream to open');
      const publish = async (data: string): Promise<string> =>
        (JSON.parse((await write(svc.url, 'POST', '/publish', { event: 'deploy', data })).body) as { id: string }).id;
      const before = await publish('before');
      await waitFor(() => got.length === 1, 10_000, 'the first deploy');
      svc.hub.destroyAll(); // the client reconnects after RETRY_MS with Last-Event-ID
      const later = [await publish('after 1'), await publish('after 2')];
      await waitFor(() => got.length >= 3 && opened >= 2, 15_000, 'the deploys after the reconnect');
      await sleep(200);
      assert.deepEqual(
        got.map((e) => e.lastEventId),
        [before, ...later],
      );
      assert.deepEqual(
        got.map((e) => JSON.parse(e.data) as string),
        ['before', 'after 1', 'after 2'],
      );
    } finally {
      es.close();
    }
  });

  test('?events=deploy receives only deploy events, ?events=message only snapshots', async () => {
    const deploys = await stream('&events=deploy');
    const messages = await stream('&events=message');
    const both = await stream('&events=deploy,message');
    try {
      await messages.waitForEvents(1);
      await both.waitForEvents(1);
      await deploys.waitFor((b) => b.retry !== undefined, 1, 10_000, 'retry');
      const steps: Array<[string, string]> = [
        ['build', 'x'],
        ['deploy', 'y'],
        ['snapshot', ''],
        ['deploy', 'z'],
        ['snapshot', ''],
      ];
      for (const [event, data] of steps) {
        const answer =
          event === 'snapshot'
            ? await write(svc.url, 'DELETE', '/announcement')
            : await write(svc.url, 'POST', '/publish', { event, data });
        assert.ok(answer.status === 202 || answer.status === 204, answer.body);
      }
      // Each stream's last expected event comes after everything before it on that stream.
      await deploys.waitFor((b) => b.data === '"z"', 1, 10_000, 'deploy z');
      await messages.waitForEvents(3);
      await both.waitForEvents(5);
      assert.deepEqual(
        deploys.blocks.map((b) => (b.retry !== undefined ? 'retry' : `${b.event}:${b.data}`)),
        ['retry', 'deploy:"y"', 'deploy:"z"'],
      );
      assert.equal(messages.blocks[0]!.retry, 500);
      assert.ok(
        messages.events.every((e) => e.event === undefined),
        JSON.stringify(messages.events.map((e) => e.event)),
      );
      assert.equal(snapshots(messages).length, 3);
      assert.deepEqual(
        both.events.map((e) => e.event ?? 'message'),
        ['message', 'deploy', 'message', 'deploy', 'message'],
      );
    } finally {
      deploys.close();
      messages.close();
      both.close();
    }
  });

  test('a stream filter with a name no event can have is a 400', async () => {
    for (const filter of ['a%20b', 'deploy,', '1x', 'x'.repeat(65)]) {
      const answer = await read(`/events?events=${filter}`);
      assert.equal(answer.status, 400, filter);
      assert.deepEqual(Object.keys(JSON.parse(answer.body) as object), ['error']);
    }
  });

  test('PUT /announcement shows in /status and on a stream at once; DELETE clears it, with a snapshot', async () => {
    const client = await stream('&events=message');
    try {
      await client.waitForEvents(1);
      const sentAt = Date.now();
      const put = await write(svc.url, 'PUT', '/announcement', {
        text: 'Database upgrade until 14:00 UTC',
        level: 'warning',
        maintenance: false,
      });
      assert.equal(put.status, 200);
      const announcement = JSON.parse(put.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(announcement).sort(), ['level', 'maintenance', 'text', 'time']);
      assert.equal(announcement.level, 'warning');
      assert.ok(Math.abs(Date.parse(announcement.time as string) - sentAt) < 60_000);
      assert.deepEqual((await status()).announcement, announcement);
      // Not from a round: STATUS_INTERVAL_MS is ten minutes.
      const [shown] = await client.waitFor(
        (b) => b.data?.includes('Database upgrade') === true,
        1,
        10_000,
        'the announcement',
      );
      assert.deepEqual((JSON.parse(shown!.data!) as { announcement: unknown }).announcement, announcement);

      const count = client.events.length;
      const deleted = await write(svc.url, 'DELETE', '/announcement');
      assert.equal(deleted.status, 204);
      assert.equal(deleted.body, '');
      assert.equal((await status()).announcement, null);
      await client.waitForEvents(count + 1);
      assert.equal((JSON.parse(client.events.at(-1)!.data!) as { announcement: unknown }).announcement, null);

      const defaults = JSON.parse((await write(svc.url, 'PUT', '/announcement', { text: 'Hello' })).body) as Record<
        string,
        unknown
      >;
      assert.equal(defaults.level, 'info');
      assert.equal(defaults.maintenance, false);
    } finally {
      client.close();
      await write(svc.url, 'DELETE', '/announcement');
    }
  });

  test('neither token appears in a log line', () => {
    const text = JSON.stringify(svc.logs);
    assert.ok(text.includes('"publishToken":"[redacted]"'), 'the start-up line shows the write API is on');
    assert.ok(!text.includes(PUBLISH_TOKEN));
    assert.ok(!text.includes(READ_TOKEN));
  });
});

// ---------------------------------------------------------------- push checks

describe('a push check fed by a cron-like pusher', { timeout: 120_000 }, () => {
  let svc: InProcess;
  const WITHIN_MS = 600;
  const INTERVAL_MS = 100;
  const check = async (): Promise<{ state: string; reason: string | null; detail: string }> => {
    const snapshot = JSON.parse((await call(svc.url, 'GET', '/status')).body) as {
      checks: Array<{ name: string; state: string; reason: string | null; detail: string }>;
    };
    return snapshot.checks.find((c) => c.name === 'nightly-backup')!;
  };
  const push = (body?: unknown): Promise<Reply> => write(svc.url, 'POST', '/push/nightly-backup', body);

  before(async () => {
    svc = await startInProcess({
      PUBLISH_TOKEN,
      STATUS_INTERVAL_MS: String(INTERVAL_MS),
      CONFIG_FILE: configFile('cron.json', {
        checks: [{ name: 'nightly-backup', url: 'push://', withinMs: WITHIN_MS }],
      }),
    });
  });
  after(async () => {
    await svc?.close();
  });

  test('pushes every 200 ms keep it up; once they stop it goes down, "no push for …", never early', async (t) => {
    let pushes = 0;
    let lastSentAt = 0;
    for (let i = 0; i < 8; i++) {
      lastSentAt = Date.now();
      const answer = await call(svc.url, 'POST', '/push/nightly-backup', { authorization: `Bearer ${PUBLISH_TOKEN}` });
      assert.equal(answer.status, 204);
      assert.equal(answer.body, '');
      pushes++;
      // The push is applied before the answer: the snapshot after it says up.
      assert.equal((await check()).state, 'up', `after push ${i + 1}`);
      await sleep(200);
    }
    await waitFor(async () => (await check()).state === 'down', 20_000, 'the check to go down');
    const downAfterMs = Date.now() - lastSentAt;
    const { reason } = await check();
    assert.match(String(reason), /^no push for \d+(ms|s)$/);
    assert.ok(downAfterMs >= WITHIN_MS, `down ${downAfterMs} ms after the last push`);
    t.diagnostic(
      `down ${downAfterMs} ms after the last push was sent (withinMs ${WITHIN_MS}, interval ${INTERVAL_MS})`,
    );

    // Back up with one push; a push that says down is down at once, its msg the reason.
    const client = await openStream(`${svc.url}/events?events=change`);
    try {
      assert.equal((await push()).status, 204);
      assert.equal((await check()).state, 'up');
      assert.equal((await push({ status: 'down', msg: 'backup failed' })).status, 204);
      pushes += 2;
      const now = await check();
      assert.equal(now.state, 'down');
      assert.equal(now.reason, 'backup failed');
      const [change] = await client.waitFor((b) => b.data?.includes('backup failed') === true, 1, 10_000, 'the change');
      assert.deepEqual(
        (({ check: c, from, to, reason: r }) => ({ check: c, from, to, reason: r }))(
          JSON.parse(change!.data!) as Record<string, unknown>,
        ),
        { check: 'nightly-backup', from: 'up', to: 'down', reason: 'backup failed' },
      );
    } finally {
      client.close();
    }
    // A down push does not wear off; a later up push ends it.
    await sleep(WITHIN_MS + 2 * INTERVAL_MS);
    assert.equal((await check()).reason, 'backup failed');
    assert.equal((await push({ status: 'up', msg: null })).status, 204);
    pushes++;
    assert.equal((await check()).state, 'up');
    // A blank msg (an empty shell variable) is no msg: the reason is never empty.
    assert.equal((await push({ status: 'down', msg: ' ' })).status, 204);
    pushes++;
    assert.deepEqual((({ state, reason }) => ({ state, reason }))(await check()), {
      state: 'down',
      reason: 'the last push said down',
    });

    const metrics = (await call(svc.url, 'GET', '/metrics')).body;
    assert.equal(metricValue(metrics, 'status_push_total{check="nightly-backup"}', 0), pushes);
  });
});

// ---------------------------------------------------------------- maintenance and alerts

describe('maintenance', { timeout: 120_000 }, () => {
  let svc: InProcess;
  let receiver: Receiver;
  /** The alerts the receiver got, parsed. */
  const received = (): Array<Record<string, unknown>> =>
    receiver.received.map((r) => JSON.parse(r.body) as Record<string, unknown>);

  before(async () => {
    receiver = await startReceiver();
    svc = await startInProcess({
      PUBLISH_TOKEN,
      STATUS_INTERVAL_MS: '60000',
      CONFIG_FILE: configFile('alerts.json', {
        checks: [{ name: 'job', url: 'push://', withinMs: 24 * HOUR_MS }],
        alerts: [{ url: `${receiver.url}/hook`, format: 'json', checks: ['job'] }],
      }),
    });
  });
  after(async () => {
    await svc?.close();
    await receiver?.close();
  });

  test('maintenance: true sends no alert while a check goes down, yet streams the change', async () => {
    const client = await openStream(`${svc.url}/events?events=change,message`);
    try {
      await client.waitForEvents(1);
      const put = await write(svc.url, 'PUT', '/announcement', {
        text: 'Migrating the job runner',
        level: 'info',
        maintenance: true,
      });
      assert.equal(put.status, 200);
      assert.equal((JSON.parse(put.body) as { maintenance: boolean }).maintenance, true);
      assert.equal(
        (await write(svc.url, 'POST', '/push/job', { status: 'down', msg: 'migration running' })).status,
        204,
      );
      const [change] = await client.waitFor((b) => b.event === 'change', 1, 10_000, 'the change event');
      assert.equal((JSON.parse(change!.data!) as { to: string }).to, 'down');
      // Nothing was even queued: the alerter decides when it is told, not when it sends.
      assert.deepEqual(svc.alerter.stats, { sent: 0, failed: 0, dropped: 0 });
      assert.equal(svc.alerter.waiting, 0);
      await sleep(500);
      assert.deepEqual(received(), []);
      // Still recorded as history.
      const history = JSON.parse((await call(svc.url, 'GET', '/history?range=1h')).body) as {
        transitions: Array<{ check: string | null; to: string }>;
      };
      assert.ok(
        history.transitions.some((tr) => tr.check === 'job' && tr.to === 'down'),
        JSON.stringify(history.transitions),
      );

      // Maintenance over: the transition that happened meanwhile is not sent afterwards...
      assert.equal((await write(svc.url, 'DELETE', '/announcement')).status, 204);
      await sleep(500);
      assert.deepEqual(received(), []);
      // ...and the next one is.
      assert.equal((await write(svc.url, 'POST', '/push/job', { status: 'up' })).status, 204);
      await waitFor(() => received().length >= 1, 15_000, 'the alert after maintenance');
      assert.equal(received().length, 1, JSON.stringify(received()));
      assert.deepEqual((({ check, from, to }) => ({ check, from, to }))(received()[0]!), {
        check: 'job',
        from: 'down',
        to: 'up',
      });
    } finally {
      client.close();
    }
  });
});

// ---------------------------------------------------------------- restart, and the token in logs

test('push state and the announcement survive a restart with STATE_DIR; the token is never logged', {
  timeout: 120_000,
}, async () => {
  const stateDir = join(scratch, 'state');
  const env = {
    PUBLISH_TOKEN,
    LOG_LEVEL: 'debug',
    STATUS_INTERVAL_MS: '60000',
    STATE_DIR: stateDir,
    CONFIG_FILE: configFile('restart.json', {
      checks: [{ name: 'nightly-backup', url: 'push://', withinMs: 24 * HOUR_MS }],
    }),
  };
  const check = async (url: string): Promise<{ state: string; reason: string | null }> => {
    const snapshot = JSON.parse((await call(url, 'GET', '/status')).body) as {
      checks: Array<{ name: string; state: string; reason: string | null }>;
    };
    return snapshot.checks.find((c) => c.name === 'nightly-backup')!;
  };
  const assertNoToken = (lines: readonly string[], stderr: readonly string[], what: string): void => {
    const text = lines.join('\n') + stderr.join('');
    assert.ok(text.includes('"publishToken":"[redacted]"'), `${what}: the start-up line says the write API is on`);
    assert.ok(!text.includes(PUBLISH_TOKEN), `${what}: the token is in the output`);
    assert.ok(!text.includes(PUBLISH_TOKEN.slice(0, 12)), `${what}: part of the token is in the output`);
  };

  const first = await startService(env);
  let announcement: unknown;
  try {
    assert.equal((await check(first.url)).state, 'up');
    assert.equal(
      (await write(first.url, 'POST', '/push/nightly-backup', { status: 'down', msg: 'disk full' })).status,
      204,
    );
    announcement = JSON.parse(
      (await write(first.url, 'PUT', '/announcement', { text: 'Backups paused', level: 'critical' })).body,
    );
    // Errors of every kind, with the token or near it.
    await call(
      first.url,
      'POST',
      '/publish',
      { authorization: `Bearer ${PUBLISH_TOKEN}x`, 'content-type': 'application/json' },
      '{}',
    );
    await call(first.url, 'POST', `/publish?token=${PUBLISH_TOKEN}`, { 'content-type': 'application/json' }, '{}');
    await write(first.url, 'POST', '/publish', { event: 'done', data: PUBLISH_TOKEN });
    await call(first.url, 'POST', '/publish', WRITE_HEADERS, `{"event":"${PUBLISH_TOKEN}`);
    await call(
      first.url,
      'POST',
      '/push/nightly-backup',
      { ...WRITE_HEADERS, 'content-type': 'text/plain' },
      PUBLISH_TOKEN,
    );
  } finally {
    assert.equal(await first.stop(), 0);
  }
  assertNoToken(first.logs, first.stderr, 'first run');
  const saved = JSON.parse(readFileSync(join(stateDir, 'pushes.json'), 'utf8')) as Record<
    string,
    { status: string; msg: string }
  >;
  assert.deepEqual(
    { status: saved['nightly-backup']!.status, msg: saved['nightly-backup']!.msg },
    { status: 'down', msg: 'disk full' },
  );

  const second = await startService(env);
  try {
    // Without the saved push it would be up ("no push yet") for a day.
    assert.deepEqual(await check(second.url), { ...(await check(second.url)), state: 'down', reason: 'disk full' });
    assert.deepEqual(
      (JSON.parse((await call(second.url, 'GET', '/status')).body) as { announcement: unknown }).announcement,
      announcement,
    );
  } finally {
    assert.equal(await second.stop(), 0);
  }
  assertNoToken(second.logs, second.stderr, 'second run');
});
