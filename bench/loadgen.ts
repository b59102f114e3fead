// bench/loadgen.ts: the load generator, run by bench/run.ts as its own process so that
// its CPU and memory are never counted as the server's. It opens N event streams to one
// server on 127.0.0.1 with raw `net` sockets (no http client in between: the timings are
// the wire's), parses every response with bench/sse-parser.ts, and measures what a client
// sees: time to the first event, delivery latency (arrival minus the event's `time`: for
// snapshots and change events the moment the server made them, for app events the moment
// the app stamped them before its POST; the two are kept apart),
// delivered against expected events. It never connects anywhere but 127.0.0.1, opens at
// most --clients sockets, and stops by itself at a hard deadline.
//
// With --filtered-share S, that share of the streams (spread evenly) asks for
// `/events?events=<--filter>` instead of `/events`. Every event a stream gets counts: the
// snapshots (unnamed), `change` events and app events (any other name); a filtered stream
// is expected to get only the types its filter names, and an app event it gets anyway is
// counted as a filter leak.
//
// It talks to run.ts with one JSON object per line on stdout:
//   {"type":"ready",...}         every client has its first event (or the connect deadline passed)
//   {"type":"window-start",...}  the steady window opens: run.ts samples the server's CPU and RSS
//   {"type":"window-end",...}    the steady window closes
//   {"type":"leaving",...}       the clients are about to close every socket
//   {"type":"result",...}        the figures; the process then exits
// Diagnostics go to stderr.

import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intFlag } from './flags.ts';
import { ResponseParser, type SseEvent, SseParser } from './sse-parser.ts';

const HOST = '127.0.0.1';
/** A bound on what one run may open, whatever the flags say (ulimit -n is 20,000 here). */
const MAX_CLIENTS = 50_000;
/** A client whose server sends this much without a line end is broken; stop reading it. */
const MAX_PENDING_LINE_CHARS = 1 << 20;
/** Every this many events one is also checked with JSON.parse, on top of each client's first. */
const FULL_PARSE_EVERY = 100;
const TIME_FIELD = '"time":"';
const ISO_TIME_LENGTH = 24; // 2026-11-25T01:23:45.678Z

/** The load generator's settings, from its command line (see bench/server-run.ts). */
interface Settings {
  port: number;
  clients: number;
  intervalMs: number;
  windowMs: number;
  concurrency: number;
  connectTimeoutMs: number;
  settleMs: number;
  /** shared: one round per interval for all streams (status-stream); per-client: a timer per stream (naive). */
  sharedRounds: boolean;
  /** After the window, wait at most this long for every stream's next event. */
  graceMs: number;
  hardDeadlineMs: number;
  request: Buffer;
  /** The request of a filtered stream, and the share of the streams that send it. */
  filteredRequest: Buffer;
  filteredShare: number;
  /** The event types a filtered stream asks for. */
  filter: ReadonlySet<string>;
}

/** The command line, checked: a bad value is one line on stderr and exit code 2. */
function parseSettings(argv: string[]): Settings {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      clients: { type: 'string', default: '10000' },
      interval: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '20' },
      concurrency: { type: 'string', default: '2000' },
      rounds: { type: 'string', default: 'shared' },
      'connect-timeout': { type: 'string', default: '30000' },
      settle: { type: 'string', default: '2000' },
      'browser-headers': { type: 'boolean', default: false },
      'filtered-share': { type: 'string', default: '0' },
      filter: { type: 'string', default: 'message,change' },
    },
    strict: true,
  });
  const port = intFlag('loadgen', 'port', flags.port, 1, 65535);
  const intervalMs = intFlag('loadgen', 'interval', flags.interval, 100, 3_600_000);
  const windowMs = intFlag('loadgen', 'seconds', flags.seconds, 1, 3600) * 1000;
  const connectTimeoutMs = intFlag('loadgen', 'connect-timeout', flags['connect-timeout'], 1000, 600_000);
  const settleMs = intFlag('loadgen', 'settle', flags.settle, 0, 60_000);
  if (flags.rounds !== 'shared' && flags.rounds !== 'per-client') {
    process.stderr.write(`loadgen: --rounds must be shared or per-client, got ${JSON.stringify(flags.rounds)}\n`);
    process.exit(2);
  }
  const graceMs = 2 * intervalMs + 5000;
  const filteredShare = Number(flags['filtered-share']);
  if (!(filteredShare >= 0 && filteredShare <= 1)) {
    process.stderr.write(`loadgen: --filtered-share must be 0-1, got ${JSON.stringify(flags['filtered-share'])}\n`);
    process.exit(2);
  }
  const filter = flags.filter.split(',').filter((name) => name !== '');
  if (filter.length === 0 || filter.some((name) => !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(name))) {
    process.stderr.write(
      `loadgen: --filter must be event names separated by commas, got ${JSON.stringify(flags.filter)}\n`,
    );
    process.exit(2);
  }
  return {
    port,
    clients: intFlag('loadgen', 'clients', flags.clients, 1, MAX_CLIENTS),
    intervalMs,
    windowMs,
    concurrency: intFlag('loadgen', 'concurrency', flags.concurrency, 1, MAX_CLIENTS),
    connectTimeoutMs,
    settleMs,
    sharedRounds: flags.rounds === 'shared',
    graceMs,
    hardDeadlineMs: connectTimeoutMs + settleMs + 2 * intervalMs + windowMs + graceMs + 15_000,
    request: eventSourceRequest(port, '/events', flags['browser-headers']),
    filteredRequest: eventSourceRequest(port, `/events?events=${filter.join(',')}`, flags['browser-headers']),
    filteredShare,
    filter: new Set(filter),
  };
}

/** Whether stream `index` is filtered: `share` of the streams, spread evenly over the indexes. */
export function isFiltered(index: number, share: number): boolean {
  return Math.floor((index + 1) * share) > Math.floor(index * share);
}

const now = (): number => performance.timeOrigin + performance.now();

function emit(message: Record<string, unknown>): void {
  // stdout on a pipe is synchronous on Linux (Node docs, "A note on process I/O").
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/**
 * The request an EventSource sends, reduced to what HTTP/1.1 needs; with browserHeaders,
 * the headers Chrome sends with it too (the server keeps a request's headers for as long
 * as its stream is open, so they count in memory per stream).
 */
function eventSourceRequest(port: number, path: string, browserHeaders: boolean): Buffer {
  const browser =
    'Connection: keep-alive\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/131.0.0.0 Safari/537.36\r\n' +
    'Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n' +
    `Referer: http://${HOST}:${port}/\r\n` +
    'Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-origin\r\n' +
    'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: "Linux"\r\n';
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n` +
      `${browserHeaders ? browser : ''}\r\n`,
  );
}

/** Set by main() before anything else runs. */
let o!: Settings;
let hardDeadline: NodeJS.Timeout | null = null;

interface Client {
  socket: net.Socket | null;
  /** Asked for the filtered event types only (--filtered-share). */
  filtered: boolean;
  startedAt: number;
  connectedAt: number;
  headAt: number;
  firstEventAt: number;
  closed: boolean;
  /** Window accounting (events whose snapshot time falls in [windowStart, windowEnd)). */
  windowEvents: number;
  windowMinSeq: number;
  windowMaxSeq: number;
  /** The time of the newest snapshot seen. */
  lastSnapshotTime: number;
  lastEventId: string;
  events: number;
}

/** Every socket reads into this one buffer (see `onread` in open()). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

const clients: Client[] = [];
const errors: Record<string, number> = {};
const statusCodes: Record<string, number> = {};
let inFlight = 0;
let launched = 0;
let firstEvents = 0;
let finishedConnecting = 0; // first event, or failed
let badEvents = 0;
let fullParses = 0;
let eventsTotal = 0;
let doneEvents = 0;
let bytesReceived = 0;
let heartbeatsBefore = 0;
let closedDuringWindow = 0;
let resets = 0;
/** Events a filtered stream got although its filter does not name their type. */
let filterLeaks = 0;
/** Named events (change, app events) seen so far: the drain then waits one round longer. */
let namedEvents = 0;

let phase: 'connect' | 'settle' | 'window' | 'drain' | 'leaving' = 'connect';
let windowStart = Number.POSITIVE_INFINITY;
let windowEnd = Number.POSITIVE_INFINITY;
let newestSnapshotTime = 0;
/** The arrival time of the read being parsed; every event in one read shares it. */
let arrival = 0;

// Latencies of the events in the window; bounded, preallocated.
let latencyCapacity = 0;
let latencies = new Float64Array(0);
let latencyCount = 0;
let latencyOverflow = 0;
// App events' latencies, apart: their time is the app's, before its POST reached the server.
let appLatencies = new Float64Array(0);
let appLatencyCount = 0;
/** Shared rounds: sequence number -> how many streams got it in the window, and its event type. */
const roundDeliveries = new Map<number, number>();
const roundTypes = new Map<number, string>();
/** Events in the window by type (message = snapshots), and the snapshots' characters. */
const deliveredByType: Record<string, number> = {};
let snapshotChars = 0;
const parsers: SseParser[] = [];

function countError(key: string): void {
  errors[key] = (errors[key] ?? 0) + 1;
}

function snapshotTime(data: string): number {
  const at = data.indexOf(TIME_FIELD);
  if (at === -1) return Number.NaN;
  const from = at + TIME_FIELD.length;
  return Date.parse(data.slice(from, from + ISO_TIME_LENGTH));
}

function onEvent(client: Client, event: SseEvent): void {
  eventsTotal++;
  if (event.type === 'done') {
    doneEvents++;
    return;
  }
  if (event.type === 'reset') {
    resets++;
    return;
  }
  const snapshot = event.type === 'message';
  const full = client.events === 0 || eventsTotal % FULL_PARSE_EVERY === 0;
  client.events++;
  // Snapshots, transitions (change) and the bench's app events all carry `time` first.
  let time = snapshotTime(event.data);
  if (full) {
    fullParses++;
    try {
      const parsed = JSON.parse(event.data) as { time?: unknown; status?: unknown };
      const at = typeof parsed.time === 'string' ? Date.parse(parsed.time) : Number.NaN;
      if (at !== time || (snapshot && typeof parsed.status !== 'string')) time = Number.NaN;
    } catch {
      time = Number.NaN;
    }
  }
  if (Number.isNaN(time)) {
    badEvents++;
    return;
  }
  if (client.filtered && !o.filter.has(event.type)) filterLeaks++;
  if (!snapshot) namedEvents++;
  if (snapshot && client.firstEventAt === 0) {
    client.firstEventAt = arrival;
    firstEvents++;
    finishedConnecting++;
    if (phase === 'connect' && finishedConnecting === o.clients) connectPhaseDone();
  }
  client.lastEventId = event.lastEventId;
  if (snapshot) {
    client.lastSnapshotTime = time;
    if (time > newestSnapshotTime) newestSnapshotTime = time;
  }
  if (time >= windowStart && time < windowEnd) {
    const dash = event.lastEventId.lastIndexOf('-');
    const seq = Number(event.lastEventId.slice(dash + 1));
    client.windowEvents++;
    if (seq < client.windowMinSeq) client.windowMinSeq = seq;
    if (seq > client.windowMaxSeq) client.windowMaxSeq = seq;
    deliveredByType[event.type] = (deliveredByType[event.type] ?? 0) + 1;
    if (snapshot) snapshotChars += event.data.length;
    if (o.sharedRounds) {
      roundDeliveries.set(seq, (roundDeliveries.get(seq) ?? 0) + 1);
      if (!roundTypes.has(seq)) roundTypes.set(seq, event.type);
    }
    if (snapshot || event.type === 'change') {
      if (latencyCount < latencyCapacity) latencies[latencyCount++] = arrival - time;
      else latencyOverflow++;
    } else if (appLatencyCount < latencyCapacity) appLatencies[appLatencyCount++] = arrival - time;
    else latencyOverflow++;
  }
  if (phase === 'drain' && snapshot && time >= drainUntil) maybeDrained();
}

/** Closes a client for good and counts why, once. */
function fail(client: Client, key: string): void {
  if (client.closed) return;
  client.closed = true;
  client.socket?.destroy();
  if (client.firstEventAt === 0) {
    countError(key);
    finishedConnecting++;
    if (phase === 'connect' && finishedConnecting === o.clients) connectPhaseDone();
  } else {
    countError(`after first event: ${key}`);
    if (phase === 'window') closedDuringWindow++;
  }
}

/** Frees a client's connect slot if it failed before its response head. */
function freeSlot(client: Client): void {
  if (client.headAt !== 0) return;
  client.headAt = -1;
  inFlight--;
  launchMore();
}

function open(): void {
  const client: Client = {
    socket: null,
    filtered: isFiltered(clients.length, o.filteredShare),
    startedAt: now(),
    connectedAt: 0,
    headAt: 0,
    firstEventAt: 0,
    closed: false,
    windowEvents: 0,
    windowMinSeq: Number.POSITIVE_INFINITY,
    windowMaxSeq: Number.NEGATIVE_INFINITY,
    lastSnapshotTime: 0,
    lastEventId: '',
    events: 0,
  };
  clients.push(client);
  inFlight++;
  // latin1: it reads only ASCII fields (id, event, the data's `time`), at a quarter of the
  // CPU of UTF-8 for large snapshots with some non-ASCII text (bench/sse-parser.ts).
  const sse = new SseParser((event) => onEvent(client, event), { latin1: true });
  parsers.push(sse);
  const response = new ResponseParser(
    (head) => {
      client.headAt = now();
      statusCodes[head.statusCode] = (statusCodes[head.statusCode] ?? 0) + 1;
      inFlight--;
      launchMore();
      if (head.statusCode !== 200) fail(client, `HTTP ${head.statusCode}`);
      else if (head.headers['content-type'] !== 'text/event-stream') fail(client, 'bad content-type');
    },
    (bytes) => {
      sse.feed(bytes);
      if (sse.pendingLength > MAX_PENDING_LINE_CHARS) fail(client, 'line too long');
    },
    () => fail(client, 'response ended'),
  );
  // `onread` reads into one shared buffer and calls back directly, without a Buffer and
  // a Readable 'data' event per read: the load generator shares the machine's two cores
  // with the server, and every microsecond it spends per read delays the arrival
  // timestamps of the streams read after it. The parsers copy what they keep.
  const socket = net.connect({
    host: HOST,
    port: o.port,
    onread: {
      buffer: READ_BUFFER,
      callback: (nread: number, buf: Uint8Array): boolean => {
        arrival = now();
        bytesReceived += nread;
        if (client.closed) return true;
        try {
          response.feed(Buffer.from(buf.buffer, buf.byteOffset, nread));
        } catch (err) {
          fail(client, (err as Error).message);
        }
        return true;
      },
    },
  });
  client.socket = socket;
  socket.setNoDelay(true);
  socket.on('connect', () => {
    client.connectedAt = now();
    socket.write(client.filtered ? o.filteredRequest : o.request);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (phase === 'leaving') return;
    freeSlot(client);
    fail(client, err.code ?? err.message);
  });
  socket.on('close', () => {
    if (phase === 'leaving') return;
    freeSlot(client);
    fail(client, 'closed by server');
  });
}

let launchScheduled = false;
function launchMore(): void {
  // Opening happens in a macrotask so that a burst of heads does not recurse.
  if (launchScheduled) return;
  launchScheduled = true;
  setImmediate(() => {
    launchScheduled = false;
    while (launched < o.clients && inFlight < o.concurrency && phase === 'connect') {
      launched++;
      open();
    }
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** p50, p99 and max of sorted milliseconds, to the microsecond. */
function spread(sorted: Float64Array): { p50: number; p99: number; max: number } {
  const at = (p: number): number => round3(percentile(sorted, p));
  return { p50: at(50), p99: at(99), max: at(100) };
}

let connectStart = 0;
let connectDeadline: NodeJS.Timeout | null = null;
let lastFirstEventAt = 0;

let connectDone = false;
function connectPhaseDone(): void {
  if (connectDone) return;
  connectDone = true;
  phase = 'settle';
  if (connectDeadline) clearTimeout(connectDeadline);
  const firsts = new Float64Array(firstEvents);
  const setups = new Float64Array(firstEvents);
  const tcps = new Float64Array(firstEvents);
  let k = 0;
  for (const c of clients) {
    if (c.firstEventAt > 0 && !c.closed) {
      firsts[k] = c.firstEventAt - c.startedAt;
      setups[k] = c.headAt - c.startedAt;
      tcps[k] = c.connectedAt - c.startedAt;
      k++;
      if (c.firstEventAt > lastFirstEventAt) lastFirstEventAt = c.firstEventAt;
    }
  }
  firsts.sort();
  setups.sort();
  tcps.sort();
  connectSummary = {
    clients: o.clients,
    concurrency: o.concurrency,
    withFirstEvent: firstEvents,
    failed: { ...errors },
    statusCodes: { ...statusCodes },
    allFirstEventsMs: round3(lastFirstEventAt - connectStart),
    firstEventMs: spread(firsts),
    tcpConnectMs: spread(tcps),
    responseHeadMs: spread(setups),
  };
  emit({ type: 'ready', t: now(), ...connectSummary });
  for (const p of parsers) heartbeatsBefore += p.comments;
  setTimeout(openWindow, o.settleMs);
}

let connectSummary: Record<string, unknown> = {};
let aliveAtWindowStart = 0;
let aliveFilteredAtWindowStart = 0;

/** Streams open at the window's start that take events of `type`. */
function recipients(type: string): number {
  return o.filter.has(type) ? aliveAtWindowStart : aliveAtWindowStart - aliveFilteredAtWindowStart;
}

function openWindow(): void {
  // With shared rounds, the window opens half an interval after a round, so that no
  // round's work straddles a window edge; per-client timers have no common phase.
  let start = now();
  if (o.sharedRounds && newestSnapshotTime > 0) {
    let aligned = newestSnapshotTime + o.intervalMs / 2;
    while (aligned < start) aligned += o.intervalMs;
    start = aligned;
  }
  setTimeout(
    () => {
      phase = 'window';
      windowStart = start;
      windowEnd = start + o.windowMs;
      const alive = clients.filter((c) => !c.closed && c.firstEventAt > 0);
      aliveAtWindowStart = alive.length;
      aliveFilteredAtWindowStart = alive.filter((c) => c.filtered).length;
      cpuAtWindowStart = process.cpuUsage();
      eventsAtWindowStart = eventsTotal;
      emit({ type: 'window-start', t: now(), windowStart, alive: aliveAtWindowStart });
      setTimeout(closeWindow, Math.max(0, windowEnd - now()));
    },
    Math.max(0, start - now()),
  );
}

let cpuAtWindowStart: NodeJS.CpuUsage = { user: 0, system: 0 };
let eventsAtWindowStart = 0;
let windowCpuUsPerEvent = Number.NaN;

let drainTimer: NodeJS.Timeout | null = null;
/** The drain ends when every stream has a snapshot at least this recent. */
let drainUntil = Number.POSITIVE_INFINITY;
function closeWindow(): void {
  phase = 'drain';
  // A named event stamped just before the window's end may reach the server after the
  // next snapshot (an app event's POST waits behind a broadcast): wait one round more.
  drainUntil = windowEnd + (namedEvents > 0 ? o.intervalMs : 0);
  const cpu = process.cpuUsage(cpuAtWindowStart);
  windowCpuUsPerEvent = (cpu.user + cpu.system) / Math.max(1, eventsTotal - eventsAtWindowStart);
  emit({ type: 'window-end', t: now(), windowEnd });
  // Every in-window event reached a stream before that stream's first later event (TCP
  // keeps order), so wait for each stream's next snapshot, or the grace period.
  drainTimer = setTimeout(finish, o.graceMs);
  maybeDrained();
}

function maybeDrained(): void {
  for (const c of clients) {
    if (!c.closed && c.firstEventAt > 0 && c.lastSnapshotTime < drainUntil) return;
  }
  finish();
}

let finished = false;
function finish(): void {
  if (finished) return;
  finished = true;
  if (drainTimer) clearTimeout(drainTimer);
  const drainedAt = now();
  const perClientExpected = Math.floor(o.windowMs / o.intervalMs);
  let delivered = 0;
  let gaps = 0;
  let starved = 0;
  let alive = 0;
  for (const c of clients) {
    if (c.firstEventAt === 0) continue;
    if (!c.closed) alive++;
    delivered += c.windowEvents;
    if (c.windowEvents === 0) starved++;
    else gaps += c.windowMaxSeq - c.windowMinSeq + 1 - c.windowEvents;
  }
  // Expected: one snapshot per interval per stream that was open when the window opened,
  // and every named event the server sent in the window to every such stream it is for.
  // Lost: events the server produced in the window that some open stream never got.
  let rounds = 0;
  let expected = aliveAtWindowStart * perClientExpected;
  let lost = 0;
  const eventsByType: Record<string, number> = {};
  for (const [seq, count] of roundDeliveries) {
    const type = roundTypes.get(seq) ?? 'message';
    eventsByType[type] = (eventsByType[type] ?? 0) + 1;
    if (type === 'message') rounds++;
    else expected += recipients(type);
    lost += Math.max(0, recipients(type) - count);
  }
  if (!o.sharedRounds) lost = gaps;
  const sorted = latencies.slice(0, latencyCount).sort();
  const appSorted = appLatencies.slice(0, appLatencyCount).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i] as number;
  let heartbeats = -heartbeatsBefore;
  for (const p of parsers) heartbeats += p.comments;
  const cpu = process.cpuUsage();
  const result = {
    type: 'result',
    connect: connectSummary,
    window: { start: windowStart, end: windowEnd, ms: o.windowMs, drainMs: round3(drainedAt - windowEnd) },
    aliveAtWindowStart,
    aliveAtEnd: alive,
    closedDuringWindow,
    delivered,
    expected,
    lost,
    roundsSeen: o.sharedRounds ? rounds : null,
    filtered: { clients: clients.filter((c) => c.filtered).length, aliveAtWindowStart: aliveFilteredAtWindowStart },
    filterLeaks,
    resets,
    deliveredByType: { ...deliveredByType },
    eventsByType,
    snapshotChars: Math.round(snapshotChars / Math.max(1, deliveredByType.message ?? 0)),
    starvedClients: starved,
    latencyMs: {
      count: sorted.length,
      overflow: latencyOverflow,
      p50: round3(percentile(sorted, 50)),
      p90: round3(percentile(sorted, 90)),
      p99: round3(percentile(sorted, 99)),
      max: round3(percentile(sorted, 100)),
      mean: round3(sorted.length ? sum / sorted.length : Number.NaN),
    },
    appLatencyMs: { count: appSorted.length, ...spread(appSorted) },
    eventsTotal,
    badEvents,
    fullParses,
    doneEvents,
    heartbeatsInWindowAndAfter: heartbeats,
    bytesReceived,
    loadgen: {
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      windowCpuUsPerEvent: round3(windowCpuUsPerEvent),
      rssBytes: process.memoryUsage.rss(),
    },
  };
  phase = 'leaving';
  emit({ type: 'leaving', t: now() });
  for (const c of clients) c.socket?.destroy();
  emit(result);
  if (hardDeadline) clearTimeout(hardDeadline);
  // Let the destroys reach the kernel, then go.
  setTimeout(() => process.exit(0), 50);
}

/** Opens the streams and runs the phases; only when this file is the program. */
function main(): void {
  o = parseSettings(process.argv.slice(2));
  // Room for a named event or two beside each snapshot (change, app events).
  // Room for a change event or two beside each snapshot, and as many app events.
  latencyCapacity = 2 * o.clients * (Math.ceil(o.windowMs / o.intervalMs) + 2);
  latencies = new Float64Array(latencyCapacity);
  appLatencies = new Float64Array(latencyCapacity);
  hardDeadline = setTimeout(() => {
    process.stderr.write(`loadgen: hard deadline of ${o.hardDeadlineMs} ms passed; exiting\n`);
    emit({ type: 'error', error: 'hard deadline passed' });
    process.exit(1);
  }, o.hardDeadlineMs);
  process.once('SIGTERM', () => process.exit(1));
  process.once('SIGINT', () => process.exit(1));
  connectStart = now();
  connectDeadline = setTimeout(() => {
    // Give up on streams that have no first event yet; measure with the rest.
    process.stderr.write(`loadgen: connect deadline: ${firstEvents}/${o.clients} have their first event\n`);
    phase = 'settle'; // stops launching
    for (const c of clients) {
      if (c.firstEventAt === 0 && !c.closed) {
        countError('no first event by deadline');
        c.closed = true;
        c.socket?.destroy();
      }
    }
    if (launched < o.clients) errors['never launched'] = o.clients - launched;
    connectPhaseDone();
  }, o.connectTimeoutMs);

  launchMore();
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) main();
