// The sockmap accelerator for real: programs loaded and attached to a cgroup of this test,
// traffic between processes in a network namespace of this test. Needs root and a kernel
// with sockmap; anywhere else every case is skipped with the reason in its name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPayloadCounter, Cgroup, baselineHostState, intercept, kernelSkipReason, Netns, payloadPackets, Peer, restoreBpffs, settledHostState, zeroCounters, type HostState } from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true, iptables: true });
if (skip) console.warn(`test/bpf/sockmap: SKIPPED: ${skip}`);
const NAME = `test-sockmap-${process.pid}`;

describe.skipIf(!!skip)(skip ? `sockmap (skipped: ${skip})` : 'sockmap', () => {
  let before: HostState;
  let ns: Netns;
  let cg: Cgroup;

  const status = async () => {
    const r = await intercept(['status', '--name', NAME]);
    expect(r.code, r.stderr).toBe(0);
    return r.json;
  };

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('sockmap');
    cg = new Cgroup('sockmap');
    addPayloadCounter(ns);
    const r = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.mode).toBe('sockmap');
  });

  afterAll(async () => {
    // Whatever happened above: remove everything, then prove the host is as it was.
    const r = await intercept(['disable', '--name', NAME]);
    await cg?.remove();
    ns?.remove();
    restoreBpffs(before);
    expect(r.code, r.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('status shows the programs attached to the test cgroup', async () => {
    const s = await status();
    expect(s.mode).toBe('sockmap');
    expect(s.sockmap.cgroup).toBe(cg.path);
    expect(s.sockmap.linkAttached).toBe(true);
    expect(s.sockmap.verdictAttached).toBe(true);
    expect([...s.sockmap.pins].sort()).toEqual(['redirect_prog', 'sock_hash', 'sockops_link', 'sockops_prog', 'stats']);
  });

  it('redirects between two sockets of the cgroup: both in the map, no TCP payload on lo', async () => {
    const s0 = (await status()).sockmap.stats;
    zeroCounters(ns);
    const peer = new Peer(['pair', '10'], { netns: ns, cgroup: cg });
    try {
      const r = await peer.first;
      expect(r.got).toBe(2000);
      const s = (await status()).sockmap;
      // Both ends are in the map, each keyed by its own view of the 4-tuple, same netns.
      const client = s.sockets.find((x: any) => x.localPort === r.clientPort && x.remotePort === r.serverPort);
      const server = s.sockets.find((x: any) => x.localPort === r.serverPort && x.remotePort === r.clientPort);
      expect(client, JSON.stringify(s.sockets)).toBeDefined();
      expect(server, JSON.stringify(s.sockets)).toBeDefined();
      expect(client.netnsCookie).toBe(server.netnsCookie);
      expect(s.stats.socketsAdded - s0.socketsAdded).toBe(2);
      // 10 sends each way at least, all redirected, none fell back.
      expect(s.stats.msgRedirected - s0.msgRedirected).toBeGreaterThanOrEqual(20);
      expect(s.stats.msgPassed - s0.msgPassed).toBe(0);
      // The bytes moved socket to socket: no data segment crossed the loopback device.
      expect(payloadPackets(ns)).toBe(0);
    } finally {
      await peer.end();
    }
    // Closed sockets leave the map by themselves.
    expect((await status()).sockmap.sockets).toEqual([]);
  });

  it('falls back to TCP when the peer is not in the map (server outside the cgroup)', async () => {
    const s0 = (await status()).sockmap.stats;
    zeroCounters(ns);
    const server = new Peer(['server', '127.0.0.1'], { netns: ns });
    try {
      const { port } = await server.first;
      const client = new Peer(['client', '127.0.0.1', String(port), '10'], { netns: ns, cgroup: cg });
      try {
        const r = await client.first;
        expect(r.got).toBe(2000);
        const s = (await status()).sockmap;
        expect(s.sockets.map((x: any) => x.localPort)).toEqual([r.clientPort]);
        expect(s.stats.socketsAdded - s0.socketsAdded).toBe(1);
        expect(s.stats.msgRedirected - s0.msgRedirected).toBe(0);
        expect(s.stats.msgPassed - s0.msgPassed).toBeGreaterThanOrEqual(10);
        // The same exchange as above, this time over TCP: the counter sees it.
        expect(payloadPackets(ns)).toBeGreaterThanOrEqual(20);
      } finally {
        await client.end();
      }
    } finally {
      await server.end();
    }
  });

  it('leaves processes outside the cgroup alone', async () => {
    const s0 = (await status()).sockmap.stats;
    zeroCounters(ns);
    const peer = new Peer(['pair', '5'], { netns: ns });
    try {
      expect((await peer.first).got).toBe(1000);
      const s = (await status()).sockmap.stats;
      expect(s.socketsAdded + s.socketsSkipped).toBe(s0.socketsAdded + s0.socketsSkipped);
      expect(payloadPackets(ns)).toBeGreaterThanOrEqual(10);
    } finally {
      await peer.end();
    }
  });

  it('refuses a second enable under the same name and changes nothing', async () => {
    const r = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', cg.path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exists/);
    expect((await status()).sockmap.linkAttached).toBe(true);
  });
});
