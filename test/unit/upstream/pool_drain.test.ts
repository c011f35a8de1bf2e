import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsStore } from '../../../src/observability/stats.js';
import type { Cluster, EndpointSpec } from '../../../src/upstream/cluster.js';
import { Http1ClusterPools, type Http1UpstreamConn } from '../../../src/upstream/http1_pool.js';
import { eventually } from '../../helpers/xds.js';
import { localCluster } from '../../helpers/clusters.js';

// The HTTP/1.1 pool against a real listening socket: what a drain does to idle, busy and late
// connections. The server side counts what is still open.

let server: net.Server;
let port = 0;
const open = new Set<net.Socket>();

beforeAll(async () => {
  server = net.createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function makeCluster(): { cluster: Cluster; pools: Http1ClusterPools; store: StatsStore } {
  const { cluster, stats, store } = localCluster(port);
  return { cluster, pools: new Http1ClusterPools(cluster, stats), store };
}

function acquire(pools: Http1ClusterPools, cluster: Cluster): Promise<{ conn: Http1UpstreamConn; reused: boolean }> {
  const host = cluster.allHosts[0]!;
  return new Promise((resolve, reject) => {
    pools.forHost(host).acquire(1000, (conn, reason, reused) => (conn ? resolve({ conn, reused }) : reject(new Error(reason))));
  });
}

const sameEndpoint = (c: Cluster): EndpointSpec[] =>
  c.allHosts.map((h) => ({ address: h.address, weight: h.weight, priority: h.priority, healthy: true, hostname: '', metadata: null }));

describe('HTTP/1.1 pool drain', () => {
  it('a retired cluster closes its idle connection at once and its busy one on release', async () => {
    const { cluster, pools, store } = makeCluster();
    await cluster.initialize();
    const idle = await acquire(pools, cluster);
    const busy = await acquire(pools, cluster);
    expect(busy.conn).not.toBe(idle.conn);
    pools.forHost(idle.conn.pool.host).release(idle.conn, true);
    await eventually(async () => open.size, (n) => n === 2, 5000, 'two upstream connections');
    cluster.close();
    await eventually(async () => idle.conn.closed, (x) => x, 5000, 'idle connection closed');
    expect(busy.conn.closed).toBe(false);
    pools.forHost(busy.conn.pool.host).release(busy.conn, true);
    await eventually(async () => open.size, (n) => n === 0, 5000, 'every upstream connection closed');
    expect(store.get('cluster.c.upstream_cx_destroy_local')).toMatchObject({ value: 2 });
  });

  it('forHost gives a new pool for a host whose pool drainHosts took, while the cluster still has it', async () => {
    const { cluster, pools } = makeCluster();
    await cluster.initialize();
    const host = cluster.allHosts[0]!;
    const first = pools.forHost(host);
    expect(pools.forHost(host)).toBe(first);
    pools.drainHosts(cluster, [host]);
    const next = pools.forHost(host);
    expect(next).not.toBe(first);
    expect(pools.forHost(host)).toBe(next);
    const { conn } = await acquire(pools, cluster);
    pools.forHost(host).release(conn, true);
    // Pooled again (the drained pool would have closed it).
    expect(conn.closed).toBe(false);
    const again = await acquire(pools, cluster);
    expect(again).toMatchObject({ conn, reused: true });
    pools.forHost(host).release(again.conn, true);
    cluster.close();
    await eventually(async () => conn.closed, (x) => x, 5000, 'connection closed with the cluster');
  });

  it('an endpoint update keeping the host keeps its connection; one dropping it drains it, and a late user is not pooled', async () => {
    const { cluster, pools } = makeCluster();
    await cluster.initialize();
    const host = cluster.allHosts[0]!;
    const first = await acquire(pools, cluster);
    pools.forHost(host).release(first.conn, true);
    cluster.setEndpoints(sameEndpoint(cluster));
    expect(cluster.allHosts[0]).toBe(host);
    const again = await acquire(pools, cluster);
    expect(again).toMatchObject({ conn: first.conn, reused: true });
    pools.forHost(host).release(again.conn, true);
    cluster.setEndpoints([]);
    await eventually(async () => first.conn.closed, (x) => x, 5000, 'removed host connection closed');
    // A request that picked the host just before it left still gets a connection, used once.
    const late = await new Promise<Http1UpstreamConn>((resolve, reject) => pools.forHost(host).acquire(1000, (c, r) => (c ? resolve(c) : reject(new Error(r)))));
    expect(late.closed).toBe(false);
    pools.forHost(host).release(late, true);
    await eventually(async () => late.closed, (x) => x, 5000, 'late connection closed after use');
    cluster.close();
  });
});
