import { createRequire } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoltStatus } from '../../src/protocols/bolt/codec.js';
import { getCodec } from '../../src/protocols/index.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { connect } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

// Call timeouts come from one sweep timer per client connection, not a timer per call: these
// check that every call still gets its own timeout answer, including a short deadline that
// arrives after a long one (the sweep must move earlier for it).

const require = createRequire(import.meta.url);
const boltV1 = require('sofa-bolt-node/lib/protocol/v1.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');

function boltCall(id: number, timeoutMs: number): Buffer {
  const cmd = new RpcRequestCommand({ serverSignature: 'com.example.Silent:1.0', methodName: 'x', args: [], timeout: timeoutMs }, { codecType: 'hessian2' });
  return Buffer.from(boltV1.encode(cmd, { rpcType: 1, cmdCode: 1, id, codecType: 'hessian2' }));
}

/** Collects the response frames read on `s`, as [kind, id, status]. */
function responses(s: net.Socket): { got: number[][]; waitFor(n: number): Promise<void> } {
  const codec = getCodec('bolt')!;
  const got: number[][] = [];
  let buf = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    const hdr = new Int32Array(H.SIZE);
    for (;;) {
      codec.decodeHeader(buf, 0, buf.length, 1 << 20, hdr);
      if (hdr[H.STATE] !== 1) break;
      got.push([hdr[H.KIND]!, hdr[H.ID_LO]!, hdr[H.STATUS]!]);
      buf = buf.subarray(hdr[H.FRAME_LEN]!);
    }
    for (const w of waiters.splice(0)) w();
  });
  return {
    got,
    async waitFor(n: number) {
      while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

describe.each(ENGINES)('rpc_proxy call deadlines on the %s engine', (engine) => {
  let strait: StraitProcess;
  let port: number;
  let mute: net.Server;

  beforeAll(async () => {
    // A provider that reads calls and never answers: every call ends by its timeout.
    mute = net.createServer((s) => s.on('data', () => {}));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: bolt
          route_config:
          - interface: com.example.Silent
            routes: [ { match: {}, route: { cluster: silent } } ]`)}
  clusters:
${staticCluster('silent', [(mute.address() as net.AddressInfo).port])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    mute?.close();
  });

  it('answers each of several calls on one connection with its own timeout reply', async () => {
    const s = await connect(port);
    const r = responses(s);
    s.write(Buffer.concat([boltCall(11, 200), boltCall(12, 250), boltCall(13, 300)]));
    await r.waitFor(3);
    expect([...r.got].sort((a, b) => a[1]! - b[1]!)).toEqual([
      [FrameKind.RESPONSE, 11, BoltStatus.TIMEOUT],
      [FrameKind.RESPONSE, 12, BoltStatus.TIMEOUT],
      [FrameKind.RESPONSE, 13, BoltStatus.TIMEOUT],
    ]);
    s.destroy();
  });

  it('answers a short deadline that arrives after a long one first', async () => {
    const s = await connect(port);
    const r = responses(s);
    // The long call's deadline is the sweep's first; the short one must pull it earlier.
    s.write(boltCall(21, 30_000));
    await new Promise((res) => setTimeout(res, 50));
    s.write(boltCall(22, 200));
    await r.waitFor(1);
    expect(r.got).toEqual([[FrameKind.RESPONSE, 22, BoltStatus.TIMEOUT]]);
    expect(await strait.stat('rpc.rpc.local_response_timeout')).toBeGreaterThanOrEqual(4);
    s.destroy();
  });
});
