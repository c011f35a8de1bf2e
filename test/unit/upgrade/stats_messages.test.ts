// A hot restart's stats delta is split so each message fits a default-sized socket buffer.
import { describe, expect, it } from 'vitest';
import { STATS_MESSAGE_BYTES, statsMessages } from '../../../src/upgrade/hot_restart.js';

function counters(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    name: `cluster.outbound|20880||svc-${i}.default.svc.cluster.local.upstream_rq_200`,
    promName: 'envoy_cluster_upstream_rq',
    promLabels: `envoy_cluster_name="outbound|20880||svc-${i}.default.svc.cluster.local",envoy_response_code="200"`,
    delta: i + 1,
  }));
}

describe('statsMessages', () => {
  it('keeps every message within the byte bound and every counter exactly once, in order', () => {
    const all = counters(5000);
    const msgs = statsMessages(all);
    expect(msgs.length).toBeGreaterThan(10);
    for (const m of msgs) expect(Buffer.byteLength(JSON.stringify(m))).toBeLessThanOrEqual(STATS_MESSAGE_BYTES);
    expect(msgs.flatMap((m) => (m.type === 'stats' ? m.counters : []))).toEqual(all);
  });

  it('sends a small delta as one message and nothing for no delta', () => {
    expect(statsMessages(counters(3))).toHaveLength(1);
    expect(statsMessages([])).toEqual([]);
  });

  it('still sends an entry larger than the bound, alone', () => {
    const huge = [{ name: 'x'.repeat(200), promName: 'p', promLabels: '', delta: 1 }, ...counters(2)];
    const msgs = statsMessages(huge, 100);
    expect(msgs.length).toBe(3);
    expect(msgs[0]).toEqual({ type: 'stats', counters: [huge[0]] });
  });
});
