import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const LIMIT = 16 * 1024;

/** An upstream that answers 503 as soon as a request head arrives, without reading the body. */
async function refusingUpstream(): Promise<{ port: number; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const server = http.createServer((_req, res) => {
    state.requests++;
    res.writeHead(503, { 'content-length': '4' });
    res.end('nope');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.each(ENGINES.slice(0, 1))('http_connection_manager request buffer limit on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof refusingUpstream>>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    up = await refusingUpstream();
    // A back-off far longer than the test: the retry is still waiting when the body overflows.
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: up, timeout: 0s, retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 600s, max_interval: 600s } } }`;
    const listener = hcmListener('bl', rc).replace('    address:', `    per_connection_buffer_limit_bytes: ${LIMIT}\n    address:`);
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${listener}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    port = await strait.port('bl');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('answers 507 when the body outgrows the buffer limit while a retry waits (Envoy router behaviour)', async () => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { 'transfer-encoding': 'chunked' } });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
    });
    req.write(Buffer.alloc(1024, 1));
    // The first try is refused with 503 while the body is small: the retry is scheduled.
    await strait.waitStat('cluster.up.upstream_rq_retry', (v) => v >= 1);
    for (let i = 0; i < 8; i++) req.write(Buffer.alloc(LIMIT, 2));
    req.end();
    const r = await response;
    expect(r.status).toBe(507);
    expect(r.body).toBe('exceeded request buffer limit while retrying upstream');
    expect(up.requests).toBe(1);
    expect(await strait.waitStat('cluster.up.retry_or_shadow_abandoned', (v) => v >= 1)).toBe(1);
  });
});
