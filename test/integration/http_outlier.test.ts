// The HTTP connection manager feeds outlier detection: a host answering 500 is ejected after
// consecutive_5xx, and traffic then goes only to the healthy one.
import http from 'node:http';
import type net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startStrait, staticCluster, type StraitProcess, httpListener } from '../helpers/strait.js';

async function server(status: number): Promise<http.Server> {
  const s = http.createServer((_req, res) => {
    res.statusCode = status;
    res.end(String(status));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

describe('HTTP outlier detection', () => {
  let good: http.Server;
  let bad: http.Server;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    good = await server(200);
    bad = await server(500);
    const ports = [good, bad].map((s) => (s.address() as net.AddressInfo).port);
    strait = await startStrait(`${ADMIN}static_resources:
  listeners:
${httpListener('web', 'pair')}
  clusters:
${staticCluster('pair', ports, '    outlier_detection: { consecutive_5xx: 3, interval: 0.1s, base_ejection_time: 60s, max_ejection_percent: 100 }\n')}`);
    port = await strait.port('web');
  });

  afterAll(async () => {
    await strait?.stop();
    good?.close();
    bad?.close();
  });

  it('ejects the host that answers 500 and then serves only 200s', async () => {
    for (let i = 0; i < 40 && !(await strait.stat('cluster.pair.outlier_detection.ejections_enforced_total')); i++) {
      await (await request(`http://127.0.0.1:${port}/`)).body.text();
      if (i % 8 === 7) await new Promise((r) => setTimeout(r, 150));
    }
    expect(await strait.stat('cluster.pair.outlier_detection.ejections_enforced_total')).toBeGreaterThanOrEqual(1);
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await request(`http://127.0.0.1:${port}/`);
      await r.body.text();
      codes.push(r.statusCode);
    }
    expect(codes.every((c) => c === 200)).toBe(true);
  });
});
