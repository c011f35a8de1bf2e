import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { HealthChecker } from '../../../src/upstream/health/checker.js';
import { buildHealthCheckConfig } from '../../../src/upstream/health/config.js';
import { containsInOrder, Outcome, type Probe } from '../../../src/upstream/health/probe.js';
import { decodeHealthStatus, encodeHealthRequest } from '../../../src/upstream/health/grpc_probe.js';
import { HealthFlag, type Host } from '../../../src/upstream/host.js';
import { host } from '../lb/helpers.js';

function parse(o: Record<string, unknown>) {
  const errors: FieldError[] = [];
  const c = buildHealthCheckConfig(o, 'hc', errors, []);
  return { c, errors };
}

const base = { timeout: '1s', interval: '10s', unhealthy_threshold: 3, healthy_threshold: 2 };

describe('health check config', () => {
  it('fills Envoy defaults: expected 200 only, no_traffic_interval 60s, edge intervals from the others', () => {
    const { c, errors } = parse({ ...base, http_health_check: { path: '/h' } });
    expect(errors).toEqual([]);
    expect(c!.probe).toMatchObject({ kind: 'http', path: '/h', method: 'GET', expected: [[200, 201]] });
    expect(c!.noTrafficIntervalMs).toBe(60_000);
    expect(c!.unhealthyIntervalMs).toBe(10_000);
    expect(c!.healthyEdgeIntervalMs).toBe(10_000);
    expect(c!.reuseConnection).toBe(true);
  });

  it('decodes TCP payloads (hex text, base64 binary)', () => {
    const { c } = parse({ ...base, tcp_health_check: { send: { text: '0a0B' }, receive: [{ binary: Buffer.from('pong').toString('base64') }] } });
    expect(c!.probe).toEqual({ kind: 'tcp', send: Buffer.from([10, 11]), receive: [Buffer.from('pong')] });
  });

  it('reports every problem with its path', () => {
    const { c, errors } = parse({ interval: '1s', healthy_threshold: 0, http_health_check: { codec_client_type: 'HTTP3', expected_statuses: [{ start: 300, end: 200 }] }, tcp_health_check: { send: { text: 'zz' } } });
    expect(c).toBeNull();
    expect(errors.map((e) => e.path).sort()).toEqual([
      'hc',
      'hc.healthy_threshold',
      'hc.tcp_health_check.send.text',
      'hc.timeout',
      'hc.unhealthy_threshold',
    ]);
  });

  it('matches expected TCP bytes in order, across extra bytes', () => {
    expect(containsInOrder(Buffer.from('xxPONGyyOK'), [Buffer.from('PONG'), Buffer.from('OK')])).toBe(true);
    expect(containsInOrder(Buffer.from('OKxxPONG'), [Buffer.from('PONG'), Buffer.from('OK')])).toBe(false);
  });

  it('writes and reads the grpc.health.v1 messages', () => {
    expect(encodeHealthRequest('')).toEqual(Buffer.alloc(0));
    expect(encodeHealthRequest('svc')).toEqual(Buffer.from([0x0a, 3, 0x73, 0x76, 0x63]));
    expect(decodeHealthStatus(Buffer.from([0x08, 1]))).toBe(1);
    expect(decodeHealthStatus(Buffer.alloc(0))).toBe(0);
  });
});

/** A probe that answers what the test queues, synchronously. */
class ScriptedProbe implements Probe {
  constructor(private readonly script: Outcome[]) {}
  start(done: (o: Outcome) => void): void {
    const o = this.script.shift();
    if (o !== undefined) done(o);
    // nothing queued: the check hangs until the session's timeout
  }
  abort(): void {}
  close(): void {}
}

describe('health checker state machine', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup(script: Outcome[], traffic = true, extra: Record<string, unknown> = {}) {
    const { c } = parse({ ...base, no_traffic_interval: '60s', ...extra, tcp_health_check: {} });
    const store = new StatsStore();
    const changes: Host[] = [];
    const checker = new HealthChecker(c!, { name: 'c', hadTraffic: () => traffic, onHealthChange: (h) => changes.push(h), onHealthCheckPass: () => {} }, store.root.scope('cluster').scope('c'), () => 0);
    checker.createProbe = () => new ScriptedProbe(script);
    const h = host(1);
    const first = checker.setHosts([h]);
    const stat = (n: string) => store.get(`cluster.c.health_check.${n}`)!.value;
    return { checker, h, first, stat, changes };
  }
  const failed = (h: Host) => h.hasFlag(HealthFlag.FAILED_ACTIVE_HC);

  it('a new host needs one pass; then unhealthy_threshold network failures take it out, healthy_threshold passes bring it back', async () => {
    const { h, first, stat } = setup([Outcome.HEALTHY, Outcome.NETWORK_FAILURE, Outcome.NETWORK_FAILURE, Outcome.NETWORK_FAILURE, Outcome.HEALTHY, Outcome.HEALTHY]);
    await first;
    expect(failed(h)).toBe(false);
    expect(h.hasFlag(HealthFlag.PENDING_ACTIVE_HC)).toBe(false);
    vi.advanceTimersByTime(10_000);
    vi.advanceTimersByTime(10_000);
    expect(failed(h)).toBe(false); // 2 of 3
    vi.advanceTimersByTime(10_000);
    expect(failed(h)).toBe(true);
    expect(stat('network_failure')).toBe(3);
    expect(stat('healthy')).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(failed(h)).toBe(true); // 1 of 2
    vi.advanceTimersByTime(10_000);
    expect(failed(h)).toBe(false);
    expect(stat('healthy')).toBe(1);
    expect(stat('attempt')).toBe(6);
  });

  it('an active failure (the host says unhealthy) takes it out at once; a timeout counts as a network failure', async () => {
    const a = setup([Outcome.HEALTHY, Outcome.ACTIVE_FAILURE]);
    await a.first;
    vi.advanceTimersByTime(10_000);
    expect(failed(a.h)).toBe(true);
    expect(a.stat('network_failure')).toBe(0);

    const t = setup([Outcome.HEALTHY]); // then hangs
    await t.first;
    vi.advanceTimersByTime(10_000 + 1000);
    expect(t.stat('network_failure')).toBe(1);
    expect(failed(t.h)).toBe(false);
  });

  it('checks an idle cluster at no_traffic_interval', async () => {
    const { first, stat } = setup([Outcome.HEALTHY, Outcome.HEALTHY, Outcome.HEALTHY], false);
    await first;
    vi.advanceTimersByTime(59_999);
    expect(stat('attempt')).toBe(1);
    vi.advanceTimersByTime(1);
    expect(stat('attempt')).toBe(2);
  });

  it('a degraded answer keeps the host in the healthy set but flags it degraded', async () => {
    const { h, first, stat } = setup([Outcome.DEGRADED]);
    await first;
    expect(h.healthy).toBe(true);
    expect(h.degraded).toBe(true);
    expect(stat('degraded')).toBe(1);
    expect(h.healthFlagsText).toBe('/degraded_active_hc');
  });

  it('a passive failure (x-envoy-immediate-health-check-fail) takes a healthy host out now', async () => {
    const { checker, h, first, stat } = setup([Outcome.HEALTHY]);
    await first;
    checker.passiveFailure(h);
    expect(failed(h)).toBe(true);
    expect(stat('passive_failure')).toBe(1);
  });
});
