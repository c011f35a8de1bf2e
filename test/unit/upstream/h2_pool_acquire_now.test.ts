// Http2ClusterPools.acquireNow(): the callback-free way H2Try takes a stream on a connection that
// is ready. It must take a stream exactly where acquire() would answer at once, count it like
// acquire() (the peer's max_concurrent_streams holds), and leave every other case to acquire().
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '../../../src/upstream/cluster.js';
import { Http2ClusterPools, type H2UpstreamSession } from '../../../src/upstream/http2_pool.js';
import { localCluster } from '../../helpers/clusters.js';

let server: http2.Http2Server;
let port = 0;
const sessions = new Set<http2.ServerHttp2Session>();

beforeAll(async () => {
  // Two streams per connection: the pool learns the limit from this server's SETTINGS.
  server = http2.createServer({ settings: { maxConcurrentStreams: 2 } });
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of sessions) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function acquire(pools: Http2ClusterPools, cluster: Cluster): Promise<H2UpstreamSession> {
  return new Promise((resolve, reject) => {
    pools.acquire(cluster.allHosts[0]!, (s, reason) => (s ? resolve(s) : reject(new Error(reason))));
  });
}

/** An initialized one-host HTTP/2 cluster against the server above, with its pools. */
async function h2Cluster(): Promise<{ cluster: Cluster; pools: Http2ClusterPools; host: Cluster['allHosts'][number] }> {
  const { cluster, stats } = localCluster(port, { http2_protocol_options: {} });
  const pools = new Http2ClusterPools(cluster, stats);
  await cluster.initialize();
  return { cluster, pools, host: cluster.allHosts[0]! };
}

describe('Http2ClusterPools.acquireNow', () => {
  it('takes a stream only on a ready connection with room, counted as acquire() counts it', async () => {
    const { cluster, pools, host } = await h2Cluster();
    try {
      // No connection yet: acquire() must open one.
      expect(pools.acquireNow(host)).toBeNull();
      const first = await acquire(pools, cluster);
      // The peer's SETTINGS (2 streams) arrive after the connection is up.
      await new Promise((r) => setTimeout(r, 50));
      const second = pools.acquireNow(host);
      expect(second).toBe(first);
      // Both streams of the connection are taken: nothing here, acquire() decides (a new connection).
      expect(pools.acquireNow(host)).toBeNull();
      pools.released(host, first);
      expect(pools.acquireNow(host)).toBe(first);
      expect(pools.acquireNow(host)).toBeNull();
      pools.released(host, first);
      pools.released(host, first);
    } finally {
      pools.drainHosts(cluster, null);
    }
  });

  it('after drainHosts, takes streams on the new connection of the host, not the drained one', async () => {
    const { cluster, pools, host } = await h2Cluster();
    try {
      const old = await acquire(pools, cluster);
      await new Promise((r) => setTimeout(r, 50));
      expect(pools.acquireNow(host)).toBe(old);
      pools.drainHosts(cluster, [host]);
      expect(pools.acquireNow(host)).toBeNull();
      const fresh = await acquire(pools, cluster);
      expect(fresh).not.toBe(old);
      await new Promise((r) => setTimeout(r, 50));
      expect(pools.acquireNow(host)).toBe(fresh);
      // Both of its streams are taken; a release makes room again.
      expect(pools.acquireNow(host)).toBeNull();
      pools.released(host, fresh);
      expect(pools.acquireNow(host)).toBe(fresh);
      pools.released(host, fresh);
      pools.released(host, fresh);
    } finally {
      pools.drainHosts(cluster, null);
    }
  });
});
