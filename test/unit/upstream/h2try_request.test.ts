// H2Try opens its stream with node:http2's request(), which in Node 20-22 pays for a deprecated
// accessor pair on every AsyncResource#bind. upstream_try.ts swaps bind for a plain one around
// that call only. bind_counter.ts (imported first) wraps node's bind with a counter, so the test
// sees whether request() still reached it, and whether the wrapper is back in place afterwards.
import { binds, counting, nodeBind } from './bind_counter.js';
import { AsyncResource } from 'node:async_hooks';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H2Try, type HeaderObject, type TryEvents } from '../../../src/filters/network/http_connection_manager/upstream_try.js';
import type { Cluster } from '../../../src/upstream/cluster.js';
import { Http2ClusterPools } from '../../../src/upstream/http2_pool.js';
import { localCluster } from '../../helpers/clusters.js';

let server: http2.Http2Server;
let port = 0;
const sessions = new Set<http2.ServerHttp2Session>();

beforeAll(async () => {
  server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-path': String(headers[':path']) }));
      stream.end(Buffer.concat([Buffer.from('echo:'), ...chunks]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  AsyncResource.prototype.bind = nodeBind;
  for (const s of sessions) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function makePools(): { cluster: Cluster; pools: Http2ClusterPools } {
  const { cluster, stats } = localCluster(port, { http2_protocol_options: {} });
  return { cluster, pools: new Http2ClusterPools(cluster, stats) };
}

interface Outcome {
  status: number;
  body: string;
  trailers: HeaderObject | null;
}

/** One try through the pool: POSTs `body` and collects what the try reports. */
function oneTry(pools: Http2ClusterPools, cluster: Cluster, path: string, body: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    const ev: TryEvents = {
      onResponse: (s) => (status = s),
      onData: (c) => chunks.push(c),
      onEnd: (trailers) => resolve({ status, body: Buffer.concat(chunks).toString(), trailers }),
      onFailure: (kind) => reject(new Error(`try failed: ${kind}`)),
      onAbort: () => reject(new Error('try aborted')),
    };
    const headers: HeaderObject = { ':method': 'POST', ':path': path, ':authority': 'c', ':scheme': 'http', 'content-type': 'application/grpc', te: 'trailers' };
    const t = new H2Try(pools, cluster.allHosts[0]!, headers, false, ev);
    t.write(Buffer.from(body));
    t.end();
  });
}

describe('H2Try stream opening', () => {
  it('opens streams without node’s AsyncResource#bind, on a connecting and on a connected session, and puts bind back', async () => {
    const { cluster, pools } = makePools();
    await cluster.initialize();
    binds.n = 0;
    // The first try waits for the connection (request() queues its callback), the others reuse it.
    const first = await oneTry(pools, cluster, '/svc/A', 'one');
    const more = await Promise.all([oneTry(pools, cluster, '/svc/B', 'two'), oneTry(pools, cluster, '/svc/C', 'three')]);
    expect(first).toEqual({ status: 200, body: 'echo:one', trailers: expect.objectContaining({ 'grpc-status': '0', 'x-path': '/svc/A' }) });
    expect(more.map((o) => o.body)).toEqual(['echo:two', 'echo:three']);
    expect(more.map((o) => o.trailers?.['x-path'])).toEqual(['/svc/B', '/svc/C']);
    expect(binds.n).toBe(0);
    expect(AsyncResource.prototype.bind).toBe(counting);
    pools.drainHosts(cluster, null);
  });

  it('the counter sees node’s bind when request() is called directly (the check above can fail)', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    binds.n = 0;
    const s = session.request({ ':method': 'POST', ':path': '/direct' });
    s.on('error', () => {});
    expect(binds.n).toBe(1);
    session.destroy();
  });
});
