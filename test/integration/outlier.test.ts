import { describe, expect, it } from 'vitest';
import { deadPort, fetchTag } from '../helpers/net.js';
import { ADMIN, startStrait, tcpListener } from '../helpers/strait.js';
import { RestartableTag } from '../helpers/upstreams.js';

function cluster(name: string, ports: number[], extra: string): string {
  const eps = ports.map((p) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }`).join('\n');
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
${extra}    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps}
`;
}

async function spread(port: number, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const t = await fetchTag(port);
    seen[t] = (seen[t] ?? 0) + 1;
  }
  return seen;
}

describe('outlier detection through tcp_proxy', () => {
  it('ejects a host whose connections fail, keeps clients whole with connect retries, and returns it after the ejection time', async () => {
    const ups = ['a', 'b', 'c'].map((t) => new RestartableTag(t));
    for (const u of ups) await u.start();
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'od', '          max_connect_attempts: 3\n')}
  clusters:
${cluster('od', ups.map((u) => u.port), `    outlier_detection:
      consecutive_5xx: 2
      interval: 0.2s
      base_ejection_time: 1s
      max_ejection_percent: 50
`)}`);
    try {
      const port = await p.port('l');
      expect(await spread(port, 30)).toEqual({ a: 10, b: 10, c: 10 });
      await ups[1]!.stop(); // b dies
      // Every client connection still reaches a live host: a failed connect is retried elsewhere.
      const during = await spread(port, 60);
      expect(during['']).toBeUndefined();
      expect(during.b).toBeUndefined();
      expect(await p.stat('cluster.od.outlier_detection.ejections_enforced_consecutive_5xx')).toBeGreaterThanOrEqual(1);
      expect(await p.stat('cluster.od.outlier_detection.ejections_active')).toBe(1);
      expect((await p.get('/clusters')).text).toContain(`od::127.0.0.1:${ups[1]!.port}::health_flags::/failed_outlier_check`);
      // b comes back; the next sweep after base_ejection_time returns it to rotation.
      await ups[1]!.start();
      await p.waitStat('cluster.od.outlier_detection.ejections_active', (v) => v === 0);
      const after = await spread(port, 30);
      expect(after.b).toBe(10);
    } finally {
      await p.stop();
      for (const u of ups) await u.stop();
    }
  });

  it('never ejects more than max_ejection_percent of the hosts (but always one)', async () => {
    const live = await new RestartableTag('live').start();
    const deads = [await deadPort(), await deadPort(), await deadPort()];
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('l', 'cap', '          max_connect_attempts: 4\n')}
  clusters:
${cluster('cap', [live.port, ...deads], `    outlier_detection:
      consecutive_5xx: 1
      interval: 60s
      base_ejection_time: 60s
      max_ejection_percent: 25
`)}`);
    try {
      const port = await p.port('l');
      // 1 of 4 hosts may be ejected (25%); the other two dead ones stay in rotation.
      for (let i = 0; i < 20; i++) await fetchTag(port);
      expect(await p.stat('cluster.cap.outlier_detection.ejections_active')).toBe(1);
      expect(await p.stat('cluster.cap.outlier_detection.ejections_overflow')).toBeGreaterThanOrEqual(1);
      const text = (await p.get('/clusters')).text;
      expect(text.match(/failed_outlier_check/g)?.length).toBe(1);
    } finally {
      await p.stop();
      await live.stop();
    }
  });
});
