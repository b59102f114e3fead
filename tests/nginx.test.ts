// tests/nginx.test.ts: the service behind real Nginx, run from deploy/nginx.conf and
// variants of it (see nginx-helpers.ts): events pass through one by one, heartbeats
// outlast proxy_read_timeout, the sub-path works, the write routes stay inside, and a
// client whose replica shuts down lands on another replica.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createGunzip } from 'node:zlib';
import { EventSource } from 'eventsource';
import {
  openStream,
  type Reply,
  request,
  type Service,
  type SseEvent,
  skipUnless,
  sleep,
  startService,
  waitFor,
  withDeadline,
} from './helpers.ts';
import { type Edit, NGINX_BIN, startNginx } from './nginx-helpers.ts';

const skip = skipUnless(NGINX_BIN, 'nginx');

/** Fast rounds, so that pacing is visible within a few seconds. */
const INTERVAL_MS = 500;

/**
 * Asserts that `events` arrived one by one, about INTERVAL_MS apart, not in bursts.
 * The first event is skipped: it is the latest snapshot, sent at once on connect, so its
 * distance to the next one is anything up to one interval.
 */
function assertPaced(events: readonly SseEvent[], what: string): void {
  const gaps = events
    .slice(1)
    .map((e, i, rest) => (i === 0 ? null : e.at - rest[i - 1]!.at))
    .filter((g): g is number => g !== null);
  const sorted = [...gaps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const bursts = gaps.filter((g) => g < INTERVAL_MS / 5).length;
  // Wide margins for a busy 2-core machine: buffering shows as gaps near 0 ms.
  assert.ok(
    median >= INTERVAL_MS / 2 && median <= INTERVAL_MS * 3,
    `${what}: median gap ${median} ms, gaps ${gaps.join(', ')}`,
  );
  assert.ok(bursts <= 1, `${what}: ${bursts} events arrived in bursts (gaps ${gaps.join(', ')} ms)`);
}

/** A raw SSE reader that also undoes gzip, for the variants where Nginx compresses. */
interface GzipAwareStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  readonly events: SseEvent[];
  /** Settles when the response head arrives. */
  readonly response: Promise<void>;
  close(): void;
}

function openMaybeGzipped(url: string): GzipAwareStream {
  let onResponse!: () => void;
  let onFail!: (err: Error) => void;
  const stream: GzipAwareStream = {
    status: 0,
    headers: {},
    events: [],
    response: new Promise((resolve, reject) => {
      onResponse = resolve;
      onFail = reject;
    }),
    close: () => req.destroy(),
  };
  const req = http.get(
    url,
    { agent: false, headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip' } },
    (res) => {
      stream.status = res.statusCode ?? 0;
      stream.headers = res.headers;
      const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
      let pending = '';
      body.setEncoding('utf8');
      body.on('data', (text: string) => {
        pending += text;
        let end: number;
        while ((end = pending.indexOf('\n\n')) !== -1) {
          const lines = pending.slice(0, end).split('\n');
          pending = pending.slice(end + 2);
          const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
          const id = lines
            .find((l) => l.startsWith('id:'))
            ?.slice(3)
            .trim();
          if (data.length > 0) stream.events.push({ id, data: data.join('\n'), at: Date.now() });
        }
      });
      body.on('error', () => {});
      onResponse();
    },
  );
  req.on('error', (err) => onFail(err));
  stream.response.catch(() => {});
  return stream;
}

describe('the service behind Nginx (deploy/nginx.conf)', { skip, timeout: 120_000 }, () => {
  let fast: Service;

  before(async () => {
    fast = await startService({ STATUS_INTERVAL_MS: String(INTERVAL_MS) });
  });
  after(async () => {
    await fast?.stop();
  });

  /** Runs `body` against an Nginx in front of `upstreams`, and always stops it. */
  async function withNginx(upstreams: number[], edits: Edit[], body: (url: string) => Promise<void>): Promise<void> {
    const nginx = await startNginx({ upstreams, edits });
    try {
      await body(nginx.url);
    } finally {
      await nginx.stop();
    }
  }

  test('passes each event through uncompressed the moment the service sends it', async () => {
    await withNginx([fast.port], [], async (url) => {
      const startedAt = Date.now();
      // Ask for gzip as browsers do: the shipped config must still not compress the stream.
      const client = await openStream(`${url}/events`, { 'accept-encoding': 'gzip' });
      try {
        assert.equal(client.status, 200);
        assert.equal(client.headers['content-type'], 'text/event-stream');
        assert.equal(client.headers['content-encoding'], undefined);
        const events = await client.waitForEvents(6, 10_000);
        assert.ok(events[0]!.at - startedAt < 3000, `first snapshot after ${events[0]!.at - startedAt} ms`);
        assertPaced(events.slice(0, 6), 'default config');
      } finally {
        client.close();
      }
    });
  });

  test('streams events one by one through a config with proxy_buffering on, because the service sends X-Accel-Buffering: no', async () => {
    await withNginx([fast.port], [['proxy_buffering off;', 'proxy_buffering on;']], async (url) => {
      const startedAt = Date.now();
      const client = await openStream(`${url}/events`, { 'accept-encoding': 'gzip' });
      try {
        assert.equal(client.headers['content-encoding'], undefined);
        const events = await client.waitForEvents(6, 10_000);
        assert.ok(events[0]!.at - startedAt < 3000, `first snapshot after ${events[0]!.at - startedAt} ms`);
        assertPaced(events.slice(0, 6), 'proxy_buffering on');
      } finally {
        client.close();
      }
    });
  });

  test("streams events one by one through a config that proxies with HTTP/1.0, Nginx's default, where the service does not chunk", async () => {
    // To an HTTP/1.0 request Node answers with the bare body up to the connection's end,
    // and the hub's broadcasts must write the bare frames too (not the chunk-encoded copy).
    await withNginx([fast.port], [['proxy_http_version 1.1;', 'proxy_http_version 1.0;']], async (url) => {
      const client = await openStream(`${url}/events`);
      try {
        assert.equal(client.status, 200);
        const events = await client.waitForEvents(6, 10_000);
        assertPaced(events.slice(0, 6), 'proxy_http_version 1.0');
        // Every line of the body is an SSE field or a blank line: no chunk sizes, no CR.
        assert.doesNotMatch(client.raw, /\r/);
        for (const line of client.raw.split('\n'))
          assert.match(line, /^$|^(retry|id|data|event): |^: /, JSON.stringify(line));
      } finally {
        client.close();
      }
    });
  });

  const gzipEverything: Edit[] = [
    ['proxy_buffering off;', 'proxy_buffering on;'],
    ['gzip_types application/json text/plain;', 'gzip_types text/event-stream application/json text/plain;'],
  ];

  test('streams events one by one even through a config that buffers and gzips text/event-stream', async () => {
    // X-Accel-Buffering: no makes Nginx read the stream unbuffered, and every unbuffered
    // read is flushed through the gzip filter: each event still leaves at once (Nginx
    // does compress it; only the config can prevent that, which is why ours does).
    await withNginx([fast.port], gzipEverything, async (url) => {
      const startedAt = Date.now();
      const client = openMaybeGzipped(`${url}/events`);
      try {
        await withDeadline(client.response, 5000, 'the response head');
        assert.equal(client.status, 200);
        await waitFor(() => client.events.length >= 6, 10_000, '6 snapshots through the gzip variant');
        assert.ok(
          client.events[0]!.at - startedAt < 3000,
          `first snapshot after ${client.events[0]!.at - startedAt} ms`,
        );
        for (const event of client.events)
          assert.match(JSON.parse(event.data!).status as string, /^(up|degraded|down)$/);
        assertPaced(client.events.slice(0, 6), 'proxy_buffering on + gzip');
      } finally {
        client.close();
      }
    });
  });

  test('holds events back in that config once Nginx ignores X-Accel-Buffering (control: the header is what keeps it live)', async () => {
    const ignoreHeader: Edit = [
      'proxy_buffering on;',
      'proxy_buffering on;\n        proxy_ignore_headers X-Accel-Buffering;',
    ];
    await withNginx([fast.port], [...gzipEverything, ignoreHeader], async (url) => {
      const client = openMaybeGzipped(`${url}/events`);
      try {
        // Nginx holds back even the response head; either way, no event gets through.
        await sleep(3000);
        assert.equal(client.events.length, 0, 'events arrived although Nginx buffered and gzipped the stream');
      } finally {
        client.close();
      }
    });
  });

  test('serves the page at /status/ and streams at /status/events under the sub-path', async () => {
    await withNginx([fast.port], [], async (url) => {
      const direct = await request(`${fast.url}/`);
      const page = await request(`${url}/status/`, { headers: { 'accept-encoding': 'identity' } });
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(String(page.headers['content-security-policy']), /script-src 'sha256-/);
      assert.equal(page.body, direct.body);

      const client = await openStream(`${url}/status/events`);
      try {
        assert.equal(client.status, 200);
        assert.equal(client.headers['content-type'], 'text/event-stream');
        const [first] = await client.waitForEvents(1, 5000);
        assert.equal(JSON.parse(first!.data!).status, 'up');
      } finally {
        client.close();
      }

      // /status is the service's JSON snapshot at the root mount, not a redirect to /status/.
      for (const path of ['/status', '/status/status']) {
        const json = await request(`${url}${path}`, { headers: { 'accept-encoding': 'identity' } });
        assert.equal(json.status, 200, path);
        assert.match(String(json.headers['content-type']), /^application\/json/, path);
        assert.equal(JSON.parse(json.body).status, 'up', path);
      }
    });
  });

  test('refuses the write routes on both mounts, even with the write token, while /status passes', async () => {
    const token = 'publish-token-behind-nginx';
    const writer = await startService({ PUBLISH_TOKEN: token, STATUS_INTERVAL_MS: '60000' });
    const headers = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'accept-encoding': 'identity',
    };
    const send = (url: string, method: string, body: string): Promise<Reply> => request(url, { method, headers, body });
    const publish = '{"event":"deploy","data":1}';
    try {
      // Control: the replica itself takes the write.
      assert.equal((await send(`${writer.url}/publish`, 'POST', publish)).status, 202);
      await withNginx([writer.port], [], async (url) => {
        const writes: Array<[string, string, string]> = [
          ['POST', '/publish', publish],
          ['POST', '/status/publish', publish],
          ['POST', '/publish?x=1', publish],
          ['POST', '/%70ublish', publish],
          ['POST', '//publish', publish],
          ['POST', '/status//publish', publish],
          ['POST', '/push/nightly', ''],
          ['POST', '/status/push/nightly', ''],
          ['POST', '/push%2Fnightly', ''],
          ['PUT', '/announcement', '{"text":"through the proxy"}'],
          ['DELETE', '/status/announcement', ''],
          ['GET', '/publish', ''],
        ];
        for (const [method, path, body] of writes) {
          const answer = await send(`${url}${path}`, method, body);
          assert.equal(answer.status, 404, `${method} ${path}: ${answer.body}`);
          assert.deepEqual(JSON.parse(answer.body), { error: 'not found' }, `${method} ${path}`);
        }
        const status = await request(`${url}/status`, { headers: { 'accept-encoding': 'identity' } });
        assert.equal(status.status, 200);
        assert.equal(JSON.parse(status.body).announcement, null);
      });
      // Nothing reached the replica: only the control was published.
      const metrics = await request(`${writer.url}/metrics`);
      assert.match(metrics.body, /^status_publish_total\{result="accepted"\} 1$/m);
      assert.match(metrics.body, /^status_publish_total\{result="refused"\} 0$/m);
    } finally {
      await writer.stop();
    }
  });

  test('keeps a quiet stream open past proxy_read_timeout because heartbeats arrive', async () => {
    const quiet = await startService({ HEARTBEAT_MS: '500', STATUS_INTERVAL_MS: '60000' });
    try {
      await withNginx([quiet.port], [['proxy_read_timeout 60s;', 'proxy_read_timeout 2s;']], async (url) => {
        const client = await openStream(`${url}/events`);
        try {
          await client.waitForEvents(1, 5000);
          await sleep(5000);
          assert.equal(client.ended, false, 'Nginx closed the stream');
          const heartbeats = client.blocks.filter((b) => b.comment !== undefined).length;
          assert.ok(heartbeats >= 4, `only ${heartbeats} heartbeats in 5 s`);
          assert.equal(client.events.length, 1, 'one snapshot: the interval is a minute');
        } finally {
          client.close();
        }
      });
    } finally {
      await quiet.stop();
    }
  });

  test('cuts a stream without heartbeats after proxy_read_timeout (control: heartbeats are what keeps it open)', async () => {
    const silent = await startService({ HEARTBEAT_MS: '0', STATUS_INTERVAL_MS: '60000' });
    try {
      await withNginx([silent.port], [['proxy_read_timeout 60s;', 'proxy_read_timeout 2s;']], async (url) => {
        const client = await openStream(`${url}/events`);
        try {
          await client.waitForEvents(1, 5000);
          const openedAt = Date.now();
          await withDeadline(client.closed, 8000, 'Nginx closing a silent stream');
          assert.ok(Date.now() - openedAt >= 1000, `closed after only ${Date.now() - openedAt} ms`);
        } finally {
          client.close();
        }
      });
    } finally {
      await silent.stop();
    }
  });

  test('sends a new stream to another replica when one answers 503 because it is full', async () => {
    const full = await startService({ MAX_CLIENTS: '1', STATUS_INTERVAL_MS: '30000' });
    const hog = await openStream(`${full.url}/events`);
    const streams = [hog];
    try {
      await hog.waitForEvents(1, 5000);
      assert.equal((await request(`${full.url}/events`)).status, 503, 'the replica is full');
      await withNginx([full.port, fast.port], [], async (url) => {
        // Round-robin sends every other new stream to the full replica first.
        for (let n = 0; n < 4; n++) {
          const client = await openStream(`${url}/events`);
          streams.push(client);
          assert.equal(client.status, 200, `stream ${n} through Nginx`);
          await client.waitForEvents(1, 5000);
        }
      });
    } finally {
      for (const stream of streams) stream.close();
      await full.stop();
    }
  });

  test('moves the clients of a replica that shuts down to the other replica, which sends its latest snapshot', async () => {
    const RETRY_MS = 1000;
    // A long interval: each replica has exactly one snapshot during the test, so "its
    // latest" is a single known id.
    const env = { RETRY_MS: String(RETRY_MS), STATUS_INTERVAL_MS: '30000' };
    const [a, b] = await Promise.all([startService(env), startService(env)]);
    const sources: EventSource[] = [];
    try {
      // Watchers connected straight to each replica tell its boot id and event ids.
      const watch = (service: Service): { ids: string[] } => {
        const seen = { ids: [] as string[] };
        const es = new EventSource(`${service.url}/events`);
        es.onmessage = (e) => seen.ids.push(e.lastEventId);
        sources.push(es);
        return seen;
      };
      const watchA = watch(a);
      const watchB = watch(b);
      await waitFor(() => watchA.ids.length > 0 && watchB.ids.length > 0, 10_000, 'a snapshot from each replica');
      const bootOf = (id: string): string => id.slice(0, id.lastIndexOf('-'));
      const bootA = bootOf(watchA.ids[0]!);
      const bootB = bootOf(watchB.ids[0]!);
      assert.notEqual(bootA, bootB);

      await withNginx([a.port, b.port], [], async (url) => {
        interface Seen {
          kind: 'message' | 'done' | 'error';
          id?: string;
          at: number;
        }
        const clients = Array.from({ length: 6 }, () => {
          const log: Seen[] = [];
          const es = new EventSource(`${url}/events`);
          es.onmessage = (e) => log.push({ kind: 'message', id: e.lastEventId, at: Date.now() });
          es.addEventListener('done', () => log.push({ kind: 'done', at: Date.now() }));
          es.onerror = () => log.push({ kind: 'error', at: Date.now() });
          sources.push(es);
          return log;
        });
        await waitFor(
          () => clients.every((log) => log.some((s) => s.kind === 'message')),
          10_000,
          'a first snapshot on every client',
        );
        const firstBoot = (log: Seen[]): string => bootOf(log.find((s) => s.kind === 'message')!.id!);
        const onA = clients.filter((log) => firstBoot(log) === bootA);
        const onB = clients.filter((log) => firstBoot(log) === bootB);
        assert.equal(onA.length + onB.length, clients.length);
        assert.ok(onA.length > 0 && onB.length > 0, `round-robin put ${onA.length} clients on A, ${onB.length} on B`);

        const exitCode = a.stop('SIGTERM');
        // The reconnect waits for `retry`, which is RETRY_MS plus a jitter of up to RETRY_MS
        // (docs/protocol.md), then Nginx finds A gone and passes the request on to B.
        const deadlineMs = 2 * RETRY_MS + 2000;
        await Promise.all(
          onA.map(async (log, n) => {
            await waitFor(() => log.some((s) => s.kind === 'done'), 5000, `done on client ${n} of A`);
            const doneAt = log.find((s) => s.kind === 'done')!.at;
            await waitFor(
              () => log.some((s) => s.kind === 'message' && s.at > doneAt),
              deadlineMs,
              `a snapshot after done on client ${n} of A`,
            );
            const next = log.find((s) => s.kind === 'message' && s.at > doneAt)!;
            assert.equal(bootOf(next.id!), bootB, 'the first event after the reconnect comes from the other replica');
            // A's id is foreign to B: B answers with its latest snapshot, nothing replayed.
            assert.equal(next.id, watchB.ids.at(-1), "the first event after the reconnect is B's latest snapshot");
          }),
        );
        assert.equal(await withDeadline(exitCode, 10_000, 'replica A exiting'), 0);
        for (const log of onB) {
          assert.deepEqual(
            log.filter((s) => s.kind !== 'message'),
            [],
            'clients on B are not disturbed',
          );
        }
      });
    } finally {
      for (const es of sources) es.close();
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
