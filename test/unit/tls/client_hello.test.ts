import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from '../../../src/tls/client_hello.js';

/** The first flight of a real Node TLS client, captured by a plain TCP server. */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  let resolve!: (b: Buffer) => void;
  const got = new Promise<Buffer>((r) => (resolve = r));
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (parseClientHello(buf) !== 'need_more') {
        resolve(buf);
        s.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ...opts });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

describe('ClientHello inspection', () => {
  it('reads SNI (lower-cased) and the ALPN list from a real client', async () => {
    const hello = await captureHello({ servername: 'Api.Example.COM', ALPNProtocols: ['h2', 'http/1.1'] });
    expect(parseClientHello(hello)).toEqual({ sni: 'api.example.com', alpn: ['h2', 'http/1.1'] });
  });

  it('reports an empty SNI and no ALPN when the client sends neither', async () => {
    // Node sends no SNI for an IP address.
    const hello = await captureHello({});
    expect(parseClientHello(hello)).toEqual({ sni: '', alpn: [] });
  });

  it('asks for more bytes until the hello is complete, whatever the split', async () => {
    const hello = await captureHello({ servername: 'a.example', ALPNProtocols: ['h2'] });
    for (const cut of [1, 3, 5, 9, 40, hello.length - 1]) expect(parseClientHello(hello.subarray(0, cut))).toBe('need_more');
    expect(parseClientHello(hello)).toEqual({ sni: 'a.example', alpn: ['h2'] });
  });

  it('reassembles a hello split across two TLS records', async () => {
    const hello = await captureHello({ servername: 'split.example', ALPNProtocols: ['h2'] });
    const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
    const record = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
    const two = Buffer.concat([record(body.subarray(0, 50)), record(body.subarray(50))]);
    expect(parseClientHello(two.subarray(0, 60))).toBe('need_more');
    expect(parseClientHello(two)).toEqual({ sni: 'split.example', alpn: ['h2'] });
  });

  it('recognises plaintext from the first bytes', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('not_tls');
    expect(parseClientHello(Buffer.from([0x16, 0x01]))).toBe('not_tls');
    // A handshake record that is not a ClientHello (type 2 = ServerHello).
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]))).toBe('not_tls');
    expect(parseClientHello(Buffer.alloc(0))).toBe('need_more');
  });
});
