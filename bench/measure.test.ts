// The bench's readings (bench/measure.ts): /proc read for this very process, the RSS
// sampler and the watches, and the figures computed from readings made up here.
// Run: node --import tsx --test bench/measure.test.ts

import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import {
  clockTicksPerSecond,
  cpuSplit,
  cpuTicks,
  figures,
  type LoadgenResult,
  listenOverflows,
  machine,
  machineBusyTicks,
  openFds,
  openFilesLimit,
  type Readings,
  RssSampler,
  readCounters,
  rssBytes,
  settledFds,
  ticksToUs,
  waitForRelease,
  watchRssReturn,
} from './measure.ts';

const pid = process.pid;

test('a process is read from /proc: RSS, CPU ticks split into user and kernel, open descriptors', () => {
  const rss = rssBytes(pid);
  assert.ok(rss > 1 << 20 && rss % 1024 === 0, `RSS ${rss}`);
  const [user, system] = cpuSplit(pid);
  assert.ok(Number.isInteger(user) && Number.isInteger(system) && user + system > 0);
  assert.ok(cpuTicks(pid) >= user + system);
  assert.ok(openFds(pid) >= 3);
  assert.throws(() => rssBytes(0x7fffffff), /ENOENT/);
});

test('settled descriptors: the fewest over the window, so a socket that comes and goes is not counted', async () => {
  const before = openFds(process.pid);
  const fd = openSync('/dev/null', 'r');
  setTimeout(() => closeSync(fd), 100);
  assert.equal(openFds(process.pid), before + 1);
  assert.ok((await settledFds(process.pid, 300)) <= before);
});

test('the machine is read too: busy ticks, listen-queue overflows, the open-files limit and a description', () => {
  assert.ok(machineBusyTicks() > 0);
  assert.ok(Number.isInteger(listenOverflows()));
  assert.ok(openFilesLimit() > 0);
  assert.equal(ticksToUs(clockTicksPerSecond()), 1e6);
  const m = machine({ nodeVersion: 'v99.0.0', nodePath: '/opt/node99/bin/node' });
  assert.equal(m.serverNode, 'v99.0.0');
  assert.equal(m.serverNodePath, '/opt/node99/bin/node');
  assert.equal(m.node, process.version);
  assert.ok(typeof m.cores === 'number' && (m.cores as number) > 0);
  const c = readCounters(pid, pid);
  assert.ok(c.loadgen <= cpuTicks(pid) && c.system <= c.cpu);
  assert.ok(c.t > 0 && c.machine > 0);
});

test('the RSS sampler keeps the peak, the sum and the count of its samples', async () => {
  const sampler = new RssSampler(pid);
  sampler.start();
  await new Promise((resolve) => setTimeout(resolve, 600));
  sampler.stop(true);
  assert.ok(sampler.samples >= 2, `${sampler.samples} samples`);
  assert.ok(sampler.peak >= sampler.sum / sampler.samples);
  const samples = sampler.samples;
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(sampler.samples, samples, 'stopped');
});

test('the watches return at once when the process is already where they wait for it to be', async () => {
  const released = await waitForRelease(pid, openFds(pid) + 10, performance.timeOrigin + performance.now());
  assert.ok(released > 0);
  const near = await watchRssReturn(pid, rssBytes(pid), performance.timeOrigin + performance.now(), 1000);
  assert.ok(Number.isFinite(near.nearStartAfterMs) && near.rssAfter > 0);
  const never = await watchRssReturn(pid, 1, 0, 0);
  assert.ok(Number.isNaN(never.nearStartAfterMs));
});

const MiB = 1024 * 1024;
const counters = (t: number, cpu: number, system: number, loadgen: number, machineTicks: number) => ({
  t,
  cpu,
  system,
  loadgen,
  machine: machineTicks,
});

function readings(overrides: Partial<Readings> = {}): Readings {
  const hz = clockTicksPerSecond();
  return {
    rssBefore: 80 * MiB,
    fdsBefore: 20,
    cpuBefore: 0,
    overflowsBefore: 5,
    rssReady: 80 * MiB + 1000 * 8 * 1024,
    cpuReady: hz / 10,
    overflowsReady: 5,
    // A 10 s window: the server busy 1 s (0.6 s in the kernel), the load generator 0.5 s, the machine 2 s.
    window: { start: counters(0, 0, 0, 0, 0), end: counters(10_000, hz, 0.6 * hz, hz / 2, 2 * hz) },
    rss: { peak: 80 * MiB + 1000 * 10 * 1024, sum: 2 * (80 * MiB + 1000 * 9 * 1024), samples: 2 },
    roundsAtStart: 5,
    roundsAtEnd: 15,
    leavingAt: 50_000,
    releasedAt: 50_400,
    rssAfter: 90 * MiB,
    nearStartAfterMs: 12_340,
    fdsAfter: 20,
    ...overrides,
  };
}

const loadgen = {
  connect: { withFirstEvent: 1000, allFirstEventsMs: 1234, firstEventMs: { p50: 1, p99: 2, max: 3 } },
  aliveAtWindowStart: 1000,
  delivered: 10_000,
  expected: 10_000,
  lost: 0,
  latencyMs: { p50: 50, p99: 99, max: 120 },
} as unknown as LoadgenResult;

test('figures: memory per stream from peak, mean and ready RSS; CPU per event and shares of a core', () => {
  const f = figures({ name: 'status-stream', rounds: 'shared', clients: 1000, cpuProfile: null }, readings(), loadgen);
  assert.equal(f.memPerStreamKiB, 10);
  assert.equal(f.memPerStreamMeanKiB, 9);
  assert.equal(f.memPerStreamAtReadyKiB, 8);
  assert.equal(f.cpuUsPerEvent, 100);
  assert.equal(f.cpuPercentInWindow, 10);
  assert.equal(f.kernelSharePercent, 60);
  assert.equal(f.loadgenCpuPercentInWindow, 5);
  assert.equal(f.otherCpuPercentInWindow, 5);
  assert.equal(f.connectCpuUsPerStream, 100);
  assert.equal(f.allFirstEventsS, 1.23);
  assert.equal(f.checkRoundsInWindow, 10);
  assert.equal(f.listenOverflows, 0);
  assert.equal(f.releaseMs, 400);
  assert.deepEqual([f.rssBeforeMiB, f.rssAfterMiB, f.nearStartAfterS], [80, 90, 12.3]);
  assert.equal(f.latencyP99Ms, 99);
});

test('figures: the naive server counts a check per event, and what was not seen stays unknown', () => {
  const naive = figures({ name: 'naive', rounds: 'per-client', clients: 1000, cpuProfile: null }, readings(), loadgen);
  assert.equal(naive.checkRoundsInWindow, 10_000);
  const unknown = figures(
    { name: 'floor', rounds: 'shared', clients: 1000, cpuProfile: null },
    readings({ roundsAtEnd: null, releasedAt: 0, nearStartAfterMs: Number.NaN }),
    loadgen,
  );
  assert.equal(unknown.checkRoundsInWindow, null);
  assert.ok(Number.isNaN(unknown.releaseMs));
  assert.ok(Number.isNaN(unknown.nearStartAfterS));
});
