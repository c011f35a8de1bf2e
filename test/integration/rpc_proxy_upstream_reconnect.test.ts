// A client connection keeps calling after the provider closed the multiplexed connection its
// earlier calls went over: the session reuses its last upstream connection only while that
// connection still takes calls, so the next call must go out on a new one and be answered.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boltCodec } from '../../src/protocols/bolt/codec.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const CLASS = Buffer.from('com.alipay.sofa.rpc.core.request.SofaRequest');

/** A Bolt v1 request with a `service` header and `content` as its body. */
function boltRequest(id: number, content: Buffer): Buffer {
  const k = Buffer.from('service');
  const v = Buffer.from('com.example.Echo:1.0');
  const header = Buffer.alloc(8 + k.length + v.length);
  header.writeUInt32BE(k.length, 0);
  k.copy(header, 4);
  header.writeUInt32BE(v.length, 4 + k.length);
  v.copy(header, 8 + k.length);
  const h = Buffer.alloc(22);
  h[0] = 1;
  h[1] = 1;
  h.writeUInt16BE(1, 2);
  h[4] = 1;
  h.writeUInt32BE(id, 5);
  h[9] = 1;
  h.writeUInt16BE(CLASS.length, 14);
  h.writeUInt16BE(header.length, 16);
  h.writeUInt32BE(content.length, 18);
  return Buffer.concat([h, CLASS, header, content]);
}

function boltResponse(id: number, content: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 1;
  h.writeUInt16BE(2, 2);
  h[4] = 1;
  h.writeUInt32BE(id, 5);
  h[9] = 1;
  h.writeUInt32BE(content.length, 16);
  return Buffer.concat([h, content]);
}

/** Whole frames of a byte stream (tests send small ones). */
function frames(onFrame: (hdr: Int32Array, frame: Buffer) => void): (d: Buffer) => void {
  let buf = Buffer.alloc(0);
  const hdr = new Int32Array(H.SIZE);
  return (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      boltCodec.decodeHeader(buf, 0, buf.length, 1 << 20, hdr);
      if (hdr[H.STATE] !== 1) break;
      const len = hdr[H.FRAME_LEN]!;
      onFrame(hdr, buf.subarray(0, len));
      buf = buf.subarray(len);
    }
  };
}

describe('rpc_proxy after the provider closes its connection', () => {
  let strait: StraitProcess;
  let server: net.Server;
  let accepted = 0;

  beforeAll(async () => {
    // Echoes each call, then closes the connection it came on: every call needs a fresh one.
    server = net.createServer((s) => {
      accepted++;
      s.on('error', () => {});
      s.on('data', frames((hdr, frame) => {
        if (hdr[H.KIND] !== FrameKind.REQUEST) return;
        s.end(boltResponse(hdr[H.ID_LO]!, Buffer.from(frame.subarray(hdr[H.BODY_OFF]!))));
      }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          codec: bolt
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: up } } ] } ]`)}
  clusters:
${staticCluster('up', [port])}`,
      { engine: 'native' },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    server?.close();
  });

  it('sends the same client\'s next call on a new provider connection, and answers it', async () => {
    const c = net.connect(await strait.port('rpc'), '127.0.0.1');
    c.on('error', () => {});
    const answers: { id: number; status: number; body: string }[] = [];
    c.on('data', frames((hdr, frame) => answers.push({ id: hdr[H.ID_LO]!, status: hdr[H.STATUS]!, body: frame.subarray(hdr[H.BODY_OFF]!).toString() })));
    await new Promise<void>((r) => c.once('connect', () => r()));
    const answered = async (n: number): Promise<boolean> => {
      for (let i = 0; i < 200 && answers.length < n; i++) await new Promise((r) => setTimeout(r, 25));
      return answers.length >= n;
    };
    c.write(boltRequest(1, Buffer.from('first')));
    expect(await answered(1)).toBe(true);
    // The proxy has seen the provider close the connection the first call used.
    await strait.waitStat('cluster.up.upstream_cx_destroy', (v) => v >= 1);
    c.write(boltRequest(2, Buffer.from('second')));
    expect(await answered(2)).toBe(true);
    expect(answers).toEqual([
      { id: 1, status: 0, body: 'first' },
      { id: 2, status: 0, body: 'second' },
    ]);
    expect(accepted).toBe(2);
    c.destroy();
  });
});
