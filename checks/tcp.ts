// checks/tcp.ts: tcp checks: up when a connection opens within the timeout; it is closed
// at once, nothing is sent. Never rejects.

import net from 'node:net';
import { bounded, elapsedMs, failure } from './attempt.ts';
import { judge, latencyFinding } from './conditions.ts';
import type { Bad } from './fields.ts';
import type { CheckCommon, Outcome, TcpCheck } from './index.ts';
import { connectHost } from './url.ts';

export const TCP_FIELDS = ['timeoutMs', 'degradedMs'] as const;
const TCP_ACCEPTED = 'tcp://host:port, with a port and nothing after it';

/** A tcp definition: the URL is tcp://host:port and nothing else. */
export function tcpDefinition(common: Omit<CheckCommon, 'kind' | 'target'>, url: URL, bad: Bad): TcpCheck {
  const extra =
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '' && url.pathname !== '/') ||
    url.search !== '' ||
    url.hash !== '';
  if (url.hostname === '' || url.port === '' || extra) bad('url', url.href, TCP_ACCEPTED);
  return Object.freeze({
    ...common,
    kind: 'tcp',
    target: `tcp://${url.host}`,
    host: connectHost(url),
    port: Number(url.port),
  });
}

export function runTcp(def: TcpCheck): Promise<Outcome> {
  return bounded(
    def.timeoutMs,
    () => `no connection within ${def.timeoutMs} ms`,
    (settle, startMs) => {
      const socket = net.connect({ host: def.host, port: def.port });
      socket.once('connect', () =>
        settle({ ...judge([latencyFinding(elapsedMs(startMs), def.degradedMs)]), detail: 'connected' }),
      );
      socket.on('error', (err) => settle(failure(err)));
      return socket;
    },
  );
}
