// metrics.ts: renders the counters that the hub and the poller keep as Prometheus text
// exposition format 0.0.4. It only reads; it never changes what it renders.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

import type { ConnectionStats } from './http/connections.ts';
import type { WriteStats } from './http/write-api.ts';
import type { HubStats } from './sse.ts';
import type { CheckStats } from './status.ts';
import { eventLoopDelayMs, residentMemoryBytes } from './status.ts';

const CHECK_STATES = ['up', 'degraded', 'down'] as const;

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsSources {
  readonly clients: number;
  readonly hub: HubStats;
  readonly rounds: number;
  readonly checks: ReadonlyMap<string, CheckStats>;
  readonly connections: ConnectionStats;
  /** Date.now() of the latest snapshot; null before the first. */
  readonly lastSnapshotMs: number | null;
  /** Build and serialization time of the latest snapshot, ms. */
  readonly snapshotBuildMs: number;
  readonly alerts: { readonly sent: number; readonly failed: number; readonly dropped: number };
  readonly reloads: { readonly ok: number; readonly error: number };
  readonly writes: WriteStats;
}

const START_TIME_SECONDS = Math.round(Date.now() - process.uptime() * 1000) / 1000;

export function renderMetrics(sources: MetricsSources): string {
  const { hub, checks } = sources;
  const cpu = process.cpuUsage();
  const out: string[] = [];
  const family = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
    samples: Array<[labels: string, value: number]>,
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${formatValue(value)}`);
  };
  const perCheck = (value: (stats: CheckStats) => number | null): Array<[string, number]> => {
    const samples: Array<[string, number]> = [];
    for (const [name, stats] of checks) {
      const v = value(stats);
      if (v !== null) samples.push([labels({ check: name }), v]);
    }
    return samples;
  };

  family('sse_clients', 'gauge', 'Open event streams.', [['', sources.clients]]);
  family('sse_connections_total', 'counter', 'Event streams opened since start.', [['', hub.connectionsTotal]]);
  family('sse_events_sent_total', 'counter', 'Events written to streams (one per stream per event).', [
    ['', hub.eventsSent],
  ]);
  family('sse_bytes_sent_total', 'counter', 'Bytes of SSE frames written to streams, before chunked encoding.', [
    ['', hub.bytesSent],
  ]);
  family('sse_clients_dropped_total', 'counter', 'Streams refused or closed by the server, by reason.', [
    [labels({ reason: 'slow' }), hub.dropped.slow],
    [labels({ reason: 'full' }), hub.dropped.full],
    [labels({ reason: 'shutdown' }), hub.dropped.shutdown],
  ]);
  family(
    'sse_resumes_total',
    'counter',
    'Streams that resumed from a Last-Event-ID, by how: a replay, or a reset (replay over 1 MiB).',
    [
      [labels({ result: 'replay' }), hub.replays],
      [labels({ result: 'reset' }), hub.resets],
    ],
  );
  family(
    'sse_requests_queued_total',
    'counter',
    'Stream requests pipelined behind another answer on their connection.',
    [['', hub.queued]],
  );
  family('status_check_rounds_total', 'counter', 'Snapshots built since start (one per interval).', [
    ['', sources.rounds],
  ]);
  family(
    'status_last_snapshot_timestamp_seconds',
    'gauge',
    'When the latest snapshot was built, since the Unix epoch.',
    sources.lastSnapshotMs === null ? [] : [['', sources.lastSnapshotMs / 1000]],
  );
  family('status_snapshot_build_seconds', 'gauge', 'Time the latest snapshot took to build and serialize.', [
    ['', Math.round(sources.snapshotBuildMs * 1000) / 1e6],
  ]);
  const results: Array<[string, number]> = [];
  for (const [name, stats] of checks) {
    results.push(
      [labels({ check: name, result: 'ok' }), stats.ok],
      [labels({ check: name, result: 'fail' }), stats.fail],
    );
  }
  family('status_checks_total', 'counter', 'Check results since start, by check and result.', results);
  family(
    'status_check_latency_seconds',
    'gauge',
    'Latency of the last run of each check.',
    perCheck((s) => (s.last === null ? null : msToSeconds(s.last.latencyMs))),
  );
  family(
    'status_up',
    'gauge',
    'Whether each check is up or degraded (1) or down (0).',
    perCheck((s) => (s.last === null ? null : Number(s.last.ok))),
  );
  const states: Array<[string, number]> = [];
  for (const [name, stats] of checks) {
    if (stats.last === null) continue;
    for (const state of CHECK_STATES) states.push([labels({ check: name, state }), Number(stats.last.state === state)]);
  }
  family('status_check_state', 'gauge', 'The state of each check: 1 for the current one, 0 for the others.', states);
  family(
    'http_connections_rejected_total',
    'counter',
    'Connections closed at once because MAX_CONNECTIONS were open.',
    [['', sources.connections.rejected]],
  );
  // Reading it needs a descriptor: when they have run out, the sample is left out.
  const rss = residentMemoryBytes();
  const { alerts, reloads, writes } = sources;
  family(
    'status_alerts_total',
    'counter',
    'Alerts by outcome: sent, failed (retries used up) or dropped (queue full, shutdown).',
    [
      [labels({ result: 'sent' }), alerts.sent],
      [labels({ result: 'failed' }), alerts.failed],
      [labels({ result: 'dropped' }), alerts.dropped],
    ],
  );
  family('status_config_reloads_total', 'counter', 'CONFIG_FILE reloads, applied (ok) or refused (error).', [
    [labels({ result: 'ok' }), reloads.ok],
    [labels({ result: 'error' }), reloads.error],
  ]);
  family('status_publish_total', 'counter', 'App events published with POST /publish, accepted or refused.', [
    [labels({ result: 'accepted' }), writes.publish.accepted],
    [labels({ result: 'refused' }), writes.publish.refused],
  ]);
  family(
    'status_push_total',
    'counter',
    'Pushes received for each push check.',
    [...writes.push].map(([check, n]) => [labels({ check }), n]),
  );
  family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', rss === null ? [] : [['', rss]]);
  family('process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds.', [
    ['', (cpu.user + cpu.system) / 1e6],
  ]);
  family('process_start_time_seconds', 'gauge', 'Start time of the process since the Unix epoch, in seconds.', [
    ['', START_TIME_SECONDS],
  ]);
  family('nodejs_eventloop_delay_seconds', 'gauge', 'Mean event-loop delay since the last check round, in seconds.', [
    ['', msToSeconds(eventLoopDelayMs())],
  ]);
  return out.join('\n') + '\n';
}

// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return `{${parts.join(',')}}`;
}

// Milliseconds carry at most two decimals here; dividing the scaled integer keeps the
// printed value short (0.00018, not 0.00017999999999999998).
function msToSeconds(ms: number): number {
  return Math.round(ms * 100) / 100_000;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}
