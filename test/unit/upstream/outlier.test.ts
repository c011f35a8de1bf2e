import { describe, expect, it } from 'vitest';
import { StatsStore } from '../../../src/observability/stats.js';
import { HealthFlag, type Host } from '../../../src/upstream/host.js';
import { buildOutlierConfig, type OutlierConfig } from '../../../src/upstream/outlier/config.js';
import { OutlierDetector } from '../../../src/upstream/outlier/detector.js';
import { NO_OUTLIER, OutlierResult } from '../../../src/upstream/outlier/monitor.js';
import type { FieldError } from '../../../src/errors.js';
import { host } from '../lb/helpers.js';

function config(o: Record<string, unknown>): OutlierConfig {
  const errors: FieldError[] = [];
  const c = buildOutlierConfig(o, 'outlier_detection', errors);
  expect(errors).toEqual([]);
  return c!;
}

/** A detector over n hosts with a hand-driven clock and dice that always enforce. */
function setup(o: Record<string, unknown>, n: number) {
  const clock = { t: 1000 };
  const store = new StatsStore();
  const changes: Host[] = [];
  const d = new OutlierDetector(config(o), store.root.scope('cluster').scope('c'), (h) => changes.push(h), { now: () => clock.t, random: () => 0 });
  const hosts = Array.from({ length: n }, (_, i) => host(i + 1));
  d.setHosts(hosts);
  const stat = (name: string) => store.get(`cluster.c.outlier_detection.${name}`)!.value;
  return { d, hosts, clock, stat, changes };
}

const ejected = (h: Host) => h.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK);

describe('outlier detection', () => {
  it('ejects after consecutive_5xx server errors in a row, and a success in between resets the count', () => {
    const { hosts, stat } = setup({ consecutive_5xx: 3 }, 10);
    const m = hosts[0]!.outlier;
    m.putHttpStatus(500);
    m.putHttpStatus(503);
    m.putHttpStatus(200); // breaks the run
    m.putHttpStatus(500);
    m.putHttpStatus(500);
    expect(ejected(hosts[0]!)).toBe(false);
    m.putHttpStatus(500);
    expect(ejected(hosts[0]!)).toBe(true);
    expect(hosts[0]!.healthy).toBe(false);
    expect(stat('ejections_enforced_consecutive_5xx')).toBe(1);
    expect(stat('ejections_detected_consecutive_5xx')).toBe(1);
    expect(stat('ejections_active')).toBe(1);
    expect(stat('ejections_enforced_total')).toBe(1);
  });

  it('maps connect failures and timeouts onto 503/504 unless local-origin errors are split', () => {
    const plain = setup({ consecutive_5xx: 2 }, 10);
    plain.hosts[0]!.outlier.putResult(OutlierResult.CONNECT_FAILED);
    plain.hosts[0]!.outlier.putResult(OutlierResult.TIMEOUT);
    expect(ejected(plain.hosts[0]!)).toBe(true);

    const split = setup({ consecutive_5xx: 2, split_external_local_origin_errors: true, consecutive_local_origin_failure: 3 }, 10);
    const m = split.hosts[0]!.outlier;
    m.putResult(OutlierResult.CONNECT_FAILED);
    m.putResult(OutlierResult.TIMEOUT);
    expect(ejected(split.hosts[0]!)).toBe(false); // local errors do not count as 5xx when split
    m.putResult(OutlierResult.CONNECT_FAILED);
    expect(ejected(split.hosts[0]!)).toBe(true);
    expect(split.stat('ejections_enforced_consecutive_local_origin_failure')).toBe(1);
  });

  it('detects consecutive gateway failures but enforces them only when asked (Envoy default 0%)', () => {
    const off = setup({ consecutive_gateway_failure: 2, consecutive_5xx: 100 }, 10);
    off.hosts[0]!.outlier.putHttpStatus(502);
    off.hosts[0]!.outlier.putHttpStatus(504);
    expect(ejected(off.hosts[0]!)).toBe(false);
    expect(off.stat('ejections_detected_consecutive_gateway_failure')).toBe(1);
    expect(off.stat('ejections_enforced_consecutive_gateway_failure')).toBe(0);

    const on = setup({ consecutive_gateway_failure: 2, consecutive_5xx: 100, enforcing_consecutive_gateway_failure: 100 }, 10);
    on.hosts[0]!.outlier.putHttpStatus(500); // not a gateway failure: resets that run
    on.hosts[0]!.outlier.putResult(OutlierResult.GATEWAY_FAILURE);
    expect(ejected(on.hosts[0]!)).toBe(false);
    on.hosts[0]!.outlier.putHttpStatus(503);
    expect(ejected(on.hosts[0]!)).toBe(true);
  });

  it('brings a host back after base_ejection_time × ejections, at an interval sweep', () => {
    const { d, hosts, clock, stat } = setup({ consecutive_5xx: 1, base_ejection_time: '10s', interval: '1s' }, 10);
    const h = hosts[0]!;
    h.outlier.putHttpStatus(500);
    expect(ejected(h)).toBe(true);
    clock.t += 9_999;
    d.sweep();
    expect(ejected(h)).toBe(true);
    clock.t += 1;
    d.sweep();
    expect(ejected(h)).toBe(false);
    expect(stat('ejections_active')).toBe(0);
    // Second ejection in a row: twice as long.
    h.outlier.putHttpStatus(500);
    expect(h.outlier.ejections).toBe(2);
    clock.t += 19_999;
    d.sweep();
    expect(ejected(h)).toBe(true);
    clock.t += 1;
    d.sweep();
    expect(ejected(h)).toBe(false);
    // Healthy for a base time per step: the multiplier comes back down one step per sweep.
    clock.t += 10_000;
    d.sweep();
    expect(h.outlier.ejections).toBe(1);
  });

  it('caps the ejection time at max_ejection_time', () => {
    const { d, hosts, clock } = setup({ consecutive_5xx: 1, base_ejection_time: '10s', max_ejection_time: '25s' }, 10);
    const h = hosts[0]!;
    for (let i = 0; i < 5; i++) {
      h.outlier.putHttpStatus(500);
      clock.t += 25_000;
      d.sweep();
      expect(ejected(h)).toBe(false);
    }
    expect(h.outlier.ejections).toBe(3); // 10 → 20 → 30 (capped at 25)
  });

  it('ejects no more than max_ejection_percent of the hosts, but always one', () => {
    const { hosts, stat } = setup({ consecutive_5xx: 1, max_ejection_percent: 20 }, 5);
    for (const h of hosts) h.outlier.putHttpStatus(500);
    expect(hosts.filter(ejected).length).toBe(1); // 2 of 5 would be 40%
    expect(stat('ejections_overflow')).toBe(4);
    const two = setup({ consecutive_5xx: 1, max_ejection_percent: 10 }, 2);
    two.hosts[0]!.outlier.putHttpStatus(500);
    expect(ejected(two.hosts[0]!)).toBe(true); // 50% > 10%, but the first ejection is always allowed
  });

  it('ejects by success rate: below mean - stdev_factor × stdev, with enough hosts and volume', () => {
    const { d, hosts, stat } = setup({ consecutive_5xx: 1000, success_rate_minimum_hosts: 5, success_rate_request_volume: 100, success_rate_stdev_factor: 1000, max_ejection_percent: 50 }, 6);
    for (const [i, h] of hosts.entries()) {
      const fails = i === 5 ? 40 : 1; // one host at 60%, the rest at 99%
      for (let k = 0; k < 100; k++) h.outlier.putHttpStatus(k < fails ? 500 : 200);
    }
    // Too little volume on one host: it is not judged and does not count towards the minimum.
    hosts[0]!.outlier.putHttpStatus(200);
    d.sweep();
    expect(hosts.map(ejected)).toEqual([false, false, false, false, false, true]);
    expect(stat('ejections_enforced_success_rate')).toBe(1);
    expect(hosts[1]!.outlier.successRate).toBe(99);
    // Next interval: counts start afresh, so without traffic nobody else is judged.
    d.sweep();
    expect(stat('ejections_detected_success_rate')).toBe(1);
  });

  it('does not judge success rate below success_rate_minimum_hosts', () => {
    const { d, hosts } = setup({ consecutive_5xx: 1000, success_rate_minimum_hosts: 5, success_rate_request_volume: 10 }, 4);
    for (const [i, h] of hosts.entries()) for (let k = 0; k < 10; k++) h.outlier.putHttpStatus(i === 0 && k < 9 ? 500 : 200);
    d.sweep();
    expect(hosts.some(ejected)).toBe(false);
  });

  it('ends an ejection when an active health check passes, and forgets removed hosts', () => {
    const { d, hosts, stat } = setup({ consecutive_5xx: 1 }, 10);
    hosts[0]!.outlier.putHttpStatus(500);
    d.healthCheckPassed(hosts[0]!);
    expect(ejected(hosts[0]!)).toBe(false);
    hosts[1]!.outlier.putHttpStatus(500);
    expect(stat('ejections_active')).toBe(1);
    d.setHosts(hosts.slice(2));
    expect(stat('ejections_active')).toBe(0);
  });

  it('hosts of clusters without outlier detection share a no-op monitor', () => {
    const h = host(1);
    expect(h.outlier).toBe(NO_OUTLIER);
    h.outlier.putResult(OutlierResult.CONNECT_FAILED);
    expect(h.healthy).toBe(true);
  });

  it('reports every bad setting with its path', () => {
    const errors: FieldError[] = [];
    buildOutlierConfig({ max_ejection_percent: 150, consecutive_5xx: 0, interval: '0s' }, 'od', errors);
    expect(errors.map((e) => e.path).sort()).toEqual(['od.consecutive_5xx', 'od.interval', 'od.max_ejection_percent']);
  });
});
