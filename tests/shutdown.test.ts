// Graceful shutdown (docs/protocol.md): on SIGTERM or SIGINT every stream gets a jittered retry
// and `event: done` and ends, the process exits 0 as soon as every socket is closed,
// at the latest after SHUTDOWN_GRACE_MS; a second signal exits 1 at once; and all of
// this holds when node is PID 1, as in a container.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { openStream, ROOT, request, startInProcess, startService, waitFor, withDeadline } from './helpers.ts';

const RETRY_MS = 1000;

/** A raw socket that sends `text` and then neither sends nor reads any more. */
async function rawSocket(port: number, text: string, read = true): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  socket.write(text);
  if (!read) socket.pause();
  return socket;
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`on ${signal} every stream gets a jittered retry and done, ends, and the process exits 0 at once`, async () => {
    const service = await startService({
      RETRY_MS: String(RETRY_MS),
      SHUTDOWN_GRACE_MS: '20000',
      STATUS_INTERVAL_MS: '60000',
    });
    const clients = await Promise.all(Array.from({ length: 5 }, () => openStream(`${service.url}/events`)));
    await Promise.all(clients.map((c) => c.waitForEvents(1)));
    // An idle keep-alive connection must not hold the exit up either.
    const idle = await rawSocket(service.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => idle.once('data', resolve));

    const started = Date.now();
    const code = await service.stop(signal);
    const tookMs = Date.now() - started;
    assert.equal(code, 0);
    // Far below the 20 s grace: it did not wait for it.
    assert.ok(tookMs < 5000, `exit took ${tookMs} ms`);
    const retries = new Set<number>();
    for (const client of clients) {
      await withDeadline(client.closed, 5000, 'stream end');
      assert.equal(client.ended, true, 'the server ended the response (chunked terminator)');
      const [retry, done] = client.blocks.slice(-2);
      assert.ok(retry.retry! >= RETRY_MS && retry.retry! <= 2 * RETRY_MS, `retry ${retry.retry}`);
      retries.add(retry.retry!);
      assert.equal(done.event, 'done');
      assert.equal(done.data, '{"reason":"shutdown"}');
    }
    // Five clients with jitter from 1000 possible values almost never all share one.
    assert.ok(retries.size > 1, `retries: ${[...retries]}`);
    const logs = service.logs.map((l) => JSON.parse(l));
    assert.ok(logs.some((l) => l.msg === 'signal received' && l.signal === signal));
    assert.equal(logs.at(-1).msg, 'stopped');
    idle.destroy();
  });
}

test('while draining, a request that was in flight gets 503 with Retry-After on /events and /readyz, and /healthz still answers', async () => {
  const service = await startInProcess({ RETRY_MS: '2500', SHUTDOWN_GRACE_MS: '10000' });
  // Three requests whose heads are not complete when the shutdown begins.
  const paths = ['/events', '/readyz', '/healthz'];
  const sockets = await Promise.all(paths.map((p) => rawSocket(service.port, `GET ${p} HTTP/1.1\r\nHost: x\r\n`)));
  const stream = await openStream(`${service.url}/events`);
  const closing = service.shutdown();
  await stream.closed;
  const answers = await Promise.all(
    sockets.map(async (socket) => {
      let text = '';
      socket.setEncoding('utf8').on('data', (t: string) => (text += t));
      const ended = new Promise((resolve) => socket.once('close', resolve));
      socket.write('\r\n');
      await withDeadline(ended, 5000, 'answer while draining');
      return text;
    }),
  );
  for (const answer of answers.slice(0, 2)) {
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /\r\nRetry-After: 3\r\n/);
    assert.match(answer, /\r\n\{"error":"shutting down"\}$/);
  }
  assert.match(answers[2], /^HTTP\/1\.1 200 [^]*\r\n\{"ok":true\}$/);
  // Each answer closes its connection, so the drain does not wait for keep-alive.
  for (const answer of answers) assert.match(answer, /\r\nConnection: close\r\n/);
  await withDeadline(closing, 5000, 'shutdown after the last socket closed');
});

test('a client that stops reading and a half-sent request hold the exit no longer than SHUTDOWN_GRACE_MS', async () => {
  const GRACE_MS = 1500;
  const service = await startService({
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    STATUS_INTERVAL_MS: '100',
    MAX_BUFFERED_BYTES: String(1 << 30),
    // Big snapshots fill the socket buffers of the reader that stopped.
    // (An environment string may not exceed 128 KiB: 400 checks of about 260 bytes.)
    CHECKS: Array.from({ length: 400 }, (_, i) => `check-${i}-${'x'.repeat(250)}=tcp://127.0.0.1:1`).join(','),
  });
  const stalled = await rawSocket(service.port, 'GET /events HTTP/1.1\r\nHost: x\r\n\r\n', false);
  const halfSent = await rawSocket(service.port, 'GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  // Wait until the kernel buffers are full and Node holds unsent bytes for the stalled stream.
  await waitFor(
    async () => {
      const metrics = await request(`${service.url}/metrics`);
      return Number(/^sse_bytes_sent_total (\d+)/m.exec(metrics.body)?.[1]) > 4 << 20;
    },
    20_000,
    'the stalled stream to fall behind',
  );
  const started = Date.now();
  const code = await service.stop('SIGTERM');
  const tookMs = Date.now() - started;
  assert.equal(code, 0);
  assert.ok(tookMs >= GRACE_MS - 100 && tookMs < GRACE_MS + 3000, `exit took ${tookMs} ms`);
  assert.ok(service.logs.some((l) => l.includes('shutdown grace ran out')));
  stalled.destroy();
  halfSent.destroy();
});

test('a second signal exits at once with code 1', async () => {
  const service = await startService({ SHUTDOWN_GRACE_MS: '30000' });
  const halfSent = await rawSocket(service.port, 'GET /healthz HTTP/1.1\r\n');
  process.kill(service.pid, 'SIGTERM');
  await waitFor(() => service.logs.some((l) => l.includes('"msg":"shutting down"')), 5000, 'shutdown to begin');
  const started = Date.now();
  const code = await service.stop('SIGTERM');
  assert.equal(code, 1);
  assert.ok(Date.now() - started < 5000);
  halfSent.destroy();
});

test('shuts down gracefully as PID 1 of its own PID namespace, as in a container', {
  skip: existsSync('/usr/bin/unshare') ? undefined : 'unshare (util-linux) not found',
}, async (t) => {
  // unshare --fork makes node PID 1 of a new namespace, where the kernel delivers only
  // signals that have a handler (pid_namespaces(7)): without ours SIGTERM would do nothing.
  const child = spawn(
    '/usr/bin/unshare',
    ['--pid', '--fork', '--mount-proc', process.execPath, '--import', 'tsx', 'server.ts'],
    {
      cwd: ROOT,
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const ready = await Promise.race([
      waitFor(() => out.includes('"msg":"listening"'), 20_000, 'start-up in a PID namespace').then(() => true),
      exited.then(() => false),
    ]);
    if (!ready && /Operation not permitted|cannot/i.test(stderr)) {
      t.skip(`unshare is not permitted here: ${stderr.trim()}`);
      return;
    }
    const line = out.split('\n').find((l) => l.includes('"msg":"listening"'))!;
    const { port, pid } = JSON.parse(line) as { port: number; pid: number };
    assert.equal(pid, 1);
    const client = await openStream(`http://127.0.0.1:${port}/events`);
    await client.waitForEvents(1);
    // The host-side PID of the namespace's PID 1 is the unshare process's child.
    const hostPid = childOf(child.pid!);
    assert.match(readFileSync(`/proc/${hostPid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);
    process.kill(hostPid, 'SIGTERM');
    await withDeadline(client.closed, 5000, 'stream end');
    assert.equal(client.blocks.at(-1)!.event, 'done');
    assert.equal(await withDeadline(exited, 5000, 'exit'), 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

/** The PID of `parent`'s only child, from /proc (no procps needed). */
function childOf(parent: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (new RegExp(`^PPid:\\s+${parent}$`, 'm').test(readFileSync(`/proc/${entry}/status`, 'utf8')))
        return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`no child of ${parent}`);
}
