// The addon writes IPv4 addresses itself (native/io/socket_util.cc FormatIPv4, not inet_ntop):
// every octet width, as the listener's own address and as an accepted peer's.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { b, until } from './helpers.js';

// Linux routes all of 127.0.0.0/8 to the loopback: each of these can be bound and dialled.
const ADDRESSES = ['127.0.0.1', '127.10.200.3', '127.255.99.0', '127.100.9.10', '127.1.22.255'];

describe('IPv4 addresses as the addon names them', () => {
  it.each(ADDRESSES)('%s: the listener and the peer an accept reports', async (ip) => {
    const lfd = b.listenTcp(ip, 0, 8, false);
    const local = b.localAddress(lfd);
    expect(local).toMatchObject({ family: 'IPv4', address: ip });
    let peer: { fam: string; addr: string; port: number } | null = null;
    const acc = new b.Acceptor(
      lfd,
      (cfd: number, fam: string, addr: string, port: number) => {
        peer = { fam, addr, port };
        b.closeFd(cfd);
      },
      () => {},
    );
    const c = net.connect({ host: ip, port: local.port, localAddress: ip });
    c.on('error', () => {});
    try {
      await new Promise<void>((r) => c.once('connect', () => r()));
      await until(() => peer !== null);
      expect(peer).toEqual({ fam: 'IPv4', addr: ip, port: c.localPort });
    } finally {
      c.destroy();
      acc.close();
    }
  });
});
