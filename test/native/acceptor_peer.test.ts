// The Acceptor hands each connection its peer's family, address and port; with repeatPeer, a
// peer whose IP is the previous connection's comes with family and address undefined (no strings
// made), and the native engine fills them in from the connection before. Real TCP connections
// from two loopback addresses, one after another.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeEngine } from '../../src/io/native-engine.js';
import type { PeerAddress } from '../../src/io/engine.js';
import { b } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Connects from `from` to 127.0.0.1:`port`; the client's own port. */
function dial(port: number, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    s.on('error', reject);
    s.on('connect', () => {
      const local = s.localPort!;
      cleanups.push(() => s.destroy());
      resolve(local);
    });
  });
}

const FROM = ['127.0.0.1', '127.0.0.1', '127.0.0.2', '127.0.0.2', '127.0.0.1'];

describe('Acceptor peer addresses', () => {
  it('with repeatPeer leaves out the family and address of a peer whose IP repeats, and gives them for every other', async () => {
    for (const repeat of [true, false]) {
      const lfd = b.listenTcp('127.0.0.1', 0, 16, false);
      const port = b.localAddress(lfd).port;
      const got: [string | undefined, string | undefined, number][] = [];
      let next: (() => void) | null = null;
      const acc = new b.Acceptor(
        lfd,
        (fd, family, address, p) => {
          got.push([family, address, p]);
          b.closeFd(fd);
          next?.();
        },
        () => {},
        repeat,
      );
      cleanups.push(() => acc.close());
      const ports: number[] = [];
      for (const from of FROM) {
        const accepted = new Promise<void>((r) => (next = r));
        ports.push(await dial(port, from));
        await accepted;
      }
      const full = FROM.map((a, i) => ['IPv4', a, ports[i]]);
      if (repeat) expect(got).toEqual(full.map((f, i) => (i > 0 && FROM[i] === FROM[i - 1] ? [undefined, undefined, f[2]] : f)));
      else expect(got).toEqual(full);
    }
  });

  it('the native engine gives every connection its own peer, repeated or not', async () => {
    const engine = new NativeEngine();
    const peers: PeerAddress[] = [];
    let next: (() => void) | null = null;
    const l = await engine.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, 16, (d) => {
      peers.push({ ...d.remote });
      d.close();
      next?.();
    });
    cleanups.push(() => l.close());
    const ports: number[] = [];
    for (const from of FROM) {
      const accepted = new Promise<void>((r) => (next = r));
      ports.push(await dial(l.address.port, from));
      await accepted;
    }
    expect(peers).toEqual(FROM.map((a, i) => ({ family: 'IPv4', address: a, port: ports[i] })));
  });
});
