import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enableHttp1BatchReader, http1BatchReader } from '../../../src/protocols/http1/batch_reader.js';
import type { Cluster } from '../../../src/upstream/cluster.js';
import { Http1ClusterPools, type Http1UpstreamConn } from '../../../src/upstream/http1_pool.js';
import { localCluster } from '../../helpers/clusters.js';
import { listenLocal } from '../../helpers/net.js';

// A pooled HTTP/1.1 connection outlives the request that opened it; it must not keep that
// request alive. Session 33 found every upstream connection holding its first request's callback
// (and through it the exchange and its downstream HTTP/2 connection) for its whole life: the
// socket's read callbacks were closures made in the scope that also held the callback.

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// An upstream that accepts and says nothing: the pool only needs connections to it.
let upstream: { port: number; close(): Promise<void> };
beforeAll(async () => {
  upstream = await listenLocal(net.createServer((s) => s.on('error', () => {})));
});
afterAll(() => upstream.close());

function makePools(): { cluster: Cluster; pools: Http1ClusterPools } {
  const { cluster, stats } = localCluster(upstream.port);
  return { cluster, pools: new Http1ClusterPools(cluster, stats) };
}

/**
 * Opens a connection for a request object the pool's callback refers to, returns the connection
 * to the pool as reusable, and lets go of the request. Resolves with the pooled connection and
 * whether the request object was collected while that connection stayed open.
 */
async function requestFreedWhilePooled(): Promise<{ freed: boolean; conn: Http1UpstreamConn }> {
  const { cluster, pools } = makePools();
  await cluster.initialize();
  const host = cluster.allHosts[0]!;
  let freed = false;
  const reg = new FinalizationRegistry<void>(() => (freed = true));
  const conn = await (async () => {
    // The exchange stand-in: what a real request's callback reaches (its try, its downstream).
    const request = { downstream: new Array(1000).fill(0) };
    reg.register(request);
    return new Promise<Http1UpstreamConn>((resolve, reject) => {
      pools.forHost(host).acquire(1000, (c, reason) => {
        if (request.downstream.length !== 1000 || !c) return reject(new Error(reason));
        resolve(c);
      });
    });
  })();
  pools.forHost(host).release(conn, true);
  for (let i = 0; i < 40 && !freed; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  return { freed, conn };
}

describe('a pooled HTTP/1.1 connection does not keep the request that opened it', () => {
  it('with Node reading the socket', async () => {
    expect(http1BatchReader()).toBeNull();
    const { freed, conn } = await requestFreedWhilePooled();
    expect(conn.closed).toBe(false);
    expect(freed).toBe(true);
    conn.destroy();
  });

  it('with the batch reader reading the socket', async () => {
    enableHttp1BatchReader();
    expect(http1BatchReader()).not.toBeNull();
    const { freed, conn } = await requestFreedWhilePooled();
    expect(conn.closed).toBe(false);
    expect(freed).toBe(true);
    conn.destroy();
  });
});
