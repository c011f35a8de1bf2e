// The native engine serves an HTTP/1.1 client connection without a net.Socket: the accepted fd
// itself is read by the batch reader and written with send(2) (src/io/direct_socket.ts), where a
// net.Socket needed a second descriptor for the reader (a dup) besides Node's own. Counted in
// the process's descriptor table: one socket per client connection, against two with
// STRAIT_HTTP1_SOCKET=node, which keeps the net.Socket path. Both serve the same bytes.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { hcmListener, httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const N = 16;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  delete process.env.STRAIT_HTTP1_SOCKET;
});

function socketFds(pid: number): number {
  let n = 0;
  for (const f of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${f}`).startsWith('socket:')) n++;
    } catch {
      // closed while listed
    }
  }
  return n;
}

/** A client connection that has had one keep-alive exchange; resolves with it (still open) and the response. */
async function exchange(port: number): Promise<{ s: net.Socket; response: string }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  const done = new Promise<void>((r) =>
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // The echo upstream answers chunked.
      if (got.endsWith('\r\n0\r\n\r\n')) r();
    }),
  );
  s.write('GET /direct HTTP/1.1\r\nhost: svc\r\n\r\n');
  await done;
  return { s, response: got };
}

async function serve(mode: 'direct' | 'node'): Promise<{ strait: StraitProcess; port: number; up: TestUpstream }> {
  if (mode === 'node') process.env.STRAIT_HTTP1_SOCKET = 'node';
  const up = await httpUpstream('u1');
  cleanups.push(() => up.close());
  const strait = await startStrait(
    `${ADMIN}
static_resources:
  listeners:
${hcmListener('edge', simpleRoutes('c1'))}
  clusters:
${staticCluster('c1', [up.port])}`,
    { engine: 'native' },
  );
  cleanups.push(() => strait.stop());
  return { strait, port: await strait.port('edge'), up };
}

/** Socket descriptors the process gains for N open client connections (the upstream connection made before). */
async function fdsPerClients(mode: 'direct' | 'node'): Promise<{ added: number; bodies: string[] }> {
  const { strait, port } = await serve(mode);
  // One exchange first: the upstream connection it opens is pooled and reused below.
  const first = await exchange(port);
  first.s.destroy();
  await strait.waitStat('http.edge.downstream_cx_active', (v) => v === 0);
  const before = socketFds(strait.pid);
  const clients = [];
  // One at a time: every exchange finds the pooled upstream connection idle.
  for (let i = 0; i < N; i++) clients.push(await exchange(port));
  cleanups.push(() => clients.forEach((c) => c.s.destroy()));
  await strait.waitStat('http.edge.downstream_cx_active', (v) => v === N);
  const added = socketFds(strait.pid) - before;
  // The body without the request id the echo repeats (a new one per request).
  const bodies = clients.map((c) => c.response.slice(c.response.indexOf('\r\n\r\n') + 4).replace(/"[0-9a-f-]{36}"/g, '"id"').replace(/"connection":\d+/, ''));
  return { added, bodies };
}

describe('HTTP/1.1 client connections on the native engine', () => {
  it('cost one descriptor each without a net.Socket, two with one (STRAIT_HTTP1_SOCKET=node)', async () => {
    const direct = await fdsPerClients('direct');
    for (const c of cleanups.splice(0).reverse()) await c();
    const node = await fdsPerClients('node');
    expect(direct.added).toBe(N);
    expect(node.added).toBe(2 * N);
    // The same answers either way.
    expect(direct.bodies.length).toBe(N);
    expect(new Set(direct.bodies).size).toBe(1);
    expect(node.bodies).toEqual(direct.bodies);
  });
});
