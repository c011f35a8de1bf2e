// The HTTP/1.1 path reads the clock once per batch of reads (src/protocols/http1/clock.ts) and
// serves the pipelined requests of many connections in one Immediate round. The time histograms
// must still measure each exchange: an upstream that holds every answer for 60 ms shows at least
// that in cluster.<name>.upstream_rq_time and http.<prefix>.downstream_rq_time on every request
// of a keep-alive connection (a reading stuck at an earlier batch, or shared by the request's and
// the response's batches, would record 0; so would a clock the native engine's accept callback,
// which fixes it for a wake-up's connections, failed to release). And pipelined requests on many connections at once are
// each answered, in order, on their own connection.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const HOLD_MS = 60;

/** Sends `n` pipelined GETs in one write and collects the `n` responses' bodies, in order. */
async function pipelined(port: number, tag: string, n: number): Promise<string[]> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const bodies: string[] = [];
  let req = '';
  for (let i = 0; i < n; i++) req += `GET /p/${tag}/${i} HTTP/1.1\r\nhost: h\r\n\r\n`;
  sock.write(req);
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('end', () => reject(new Error(`connection ${tag} ended after ${bodies.length} responses`)));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, i))?.[1] ?? 0);
        if (buf.length < i + 4 + len) break;
        bodies.push(buf.slice(i + 4, i + 4 + len));
        buf = buf.slice(i + 4 + len);
      }
      if (bodies.length === n) resolve();
    });
  });
  sock.destroy();
  return bodies;
}

async function slowUpstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1]!;
        buf = buf.slice(i + 4);
        // /p/...: pipelined requests, answered at once with their path.
        if (path.startsWith('/p/')) s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
        else setTimeout(() => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), HOLD_MS);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe.each(ENGINES)('HTTP/1.1 request timing on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof slowUpstream>>;
  let strait: StraitProcess;
  let client: Client;

  beforeAll(async () => {
    up = await slowUpstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('up'))}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    client = new Client(`http://127.0.0.1:${await strait.port('ingress')}`, { pipelining: 1 });
  });

  afterAll(async () => {
    await client?.destroy();
    await strait?.stop();
    await up?.close();
  });

  it('records each exchange in the rq_time histograms with about the upstream hold at least (a timer may fire a little early)', async () => {
    const n = 5;
    for (let i = 0; i < n; i++) {
      const r = await client.request({ method: 'GET', path: `/x${i}` });
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('ok');
    }
    const prom = (await strait.get('/stats/prometheus')).text;
    const line = (re: RegExp): number => Number(re.exec(prom)?.[1] ?? NaN);
    const upCount = line(/^envoy_cluster_upstream_rq_time_count\{envoy_cluster_name="up"\} (\S+)$/m);
    expect(upCount).toBe(n);
    // No exchange fell in a bucket below the hold: every one took at least HOLD_MS.
    expect(line(/^envoy_cluster_upstream_rq_time_bucket\{envoy_cluster_name="up",le="50"\} (\S+)$/m)).toBe(0);
    expect(line(/^envoy_cluster_upstream_rq_time_sum\{envoy_cluster_name="up"\} (\S+)$/m)).toBeGreaterThanOrEqual(n * (HOLD_MS - 5));
    const downSum = line(/^envoy_http_downstream_rq_time_sum\{envoy_http_conn_manager_prefix="[^"]*"\} (\S+)$/m);
    expect(downSum).toBeGreaterThanOrEqual(n * (HOLD_MS - 5));
  });

  it('answers pipelined requests on many connections at once, each in order on its own connection', async () => {
    const port = await strait.port('ingress');
    const before = (await strait.stat('http.ingress.downstream_rq_completed')) ?? 0;
    const conns = 8;
    const n = 25;
    const got = await Promise.all(Array.from({ length: conns }, (_, c) => pipelined(port, `c${c}`, n)));
    for (let c = 0; c < conns; c++) expect(got[c]).toEqual(Array.from({ length: n }, (_, i) => `/p/c${c}/${i}`));
    await strait.waitStat('http.ingress.downstream_rq_completed', (v) => v === before + conns * n);
  });
});
