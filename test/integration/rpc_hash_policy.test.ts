import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCodec } from '../../src/protocols/index.js';
import { H } from '../../src/protocols/types.js';
import { connect, deadPort } from '../helpers/net.js';
import { ADMIN, REPO, startStrait, rpcProxyListener, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const boltV1 = require('sofa-bolt-node/lib/protocol/v1.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

async function sofaServer(tag: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = new RpcServer({ logger: quiet, port: await deadPort() });
  server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, {
    async hello(name: string) {
      return `${tag} hello ${name}`;
    },
    async bye(name: string) {
      return `${tag} bye ${name}`;
    },
  });
  await server.start();
  return { port: server._servers[0].address().port, close: () => server.close() };
}

/**
 * Adds entries to a Bolt v1 request's header map. With hessian2, sofa-bolt-node puts
 * requestProps inside the body and only `service` in the header map; SOFARPC's Java client and
 * gateways put custom keys there, which is what a hash policy's `header` reads.
 */
function withHeaders(frame: Buffer, props: Record<string, string>): Buffer {
  const classLen = frame.readUInt16BE(14);
  const headerLen = frame.readUInt16BE(16);
  const extra = Buffer.concat(
    Object.entries(props).flatMap(([k, v]) => {
      const kb = Buffer.from(k);
      const vb = Buffer.from(v);
      const kl = Buffer.alloc(4);
      kl.writeUInt32BE(kb.length);
      const vl = Buffer.alloc(4);
      vl.writeUInt32BE(vb.length);
      return [kl, kb, vl, vb];
    }),
  );
  const head = Buffer.from(frame.subarray(0, 22));
  head.writeUInt16BE(headerLen + extra.length, 16);
  const headerEnd = 22 + classLen + headerLen;
  return Buffer.concat([head, frame.subarray(22, headerEnd), extra, frame.subarray(headerEnd)]);
}

/** One SOFARPC call over `s` with `props` in the Bolt header map; resolves the answering provider's tag. */
function call(s: net.Socket, id: number, method: string, props: Record<string, string>): Promise<string> {
  const cmd = new RpcRequestCommand({ serverSignature: 'com.example.UserService:1.0', methodName: method, args: [{ $class: 'java.lang.String', $: 'x' }], timeout: 3000 }, { codecType: 'hessian2' });
  const frame = withHeaders(Buffer.from(boltV1.encode(cmd, { rpcType: 1, cmdCode: 1, id, codecType: 'hessian2' })), props);
  return new Promise((resolve, reject) => {
    let acc = Buffer.alloc(0);
    const hdr = new Int32Array(H.SIZE);
    const onData = (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      const r = getCodec('bolt')!.decodeHeader(acc, 0, acc.length, 1 << 20, hdr);
      if (r <= 0 || acc.length < hdr[H.FRAME_LEN]!) return;
      s.off('data', onData);
      const m = /(p\d) (hello|bye) x/.exec(acc.toString('latin1'));
      if (m) resolve(m[1]!);
      else reject(new Error(`no provider tag in reply: ${acc.toString('latin1')}`));
    };
    s.on('data', onData);
    s.write(frame);
  });
}

describe('rpc_proxy route hash_policy (Bolt frame fields) with RING_HASH and MAGLEV', () => {
  const servers: Array<Awaited<ReturnType<typeof sofaServer>>> = [];
  let p: StraitProcess;
  const clusters = (ports: number[]) =>
    ['rh', 'mg']
      .map((name) => {
        const eps = ports.map((port) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }`).join('\n');
        return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: ${name === 'rh' ? 'RING_HASH' : 'MAGLEV'}
    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps}
`;
      })
      .join('');
  beforeAll(async () => {
    for (let i = 0; i < 4; i++) servers.push(await sofaServer(`p${i}`));
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${rpcProxyListener('by_header', `          protocol: bolt
          route_config:
          - interface: com.example.UserService
            routes:
            - match: {}
              route: { cluster: rh, hash_policy: [ { header: uid } ] }`, 'hdr')}
${rpcProxyListener('by_method', `          protocol: bolt
          route_config:
          - interface: com.example.UserService
            routes:
            - match: {}
              route: { cluster: mg, hash_policy: [ { header: absent, terminal: true }, { field: METHOD, terminal: true }, { source_ip: true } ] }`, 'mth')}
  clusters:
${clusters(servers.map((s) => s.port))}`);
  });
  afterAll(async () => {
    await p?.stop();
    for (const s of servers) await s.close();
  });

  it('a Bolt header key always reaches the same provider, and keys spread over every provider', async () => {
    const port = await p.port('by_header');
    const where = new Map<string, string>();
    // Several client connections: the key, not the connection, decides.
    for (let round = 0; round < 3; round++) {
      const s = await connect(port);
      try {
        for (let i = 0; i < 40; i++) {
          const key = `user-${i}`;
          const tag = await call(s, i + 1, 'hello', { uid: key });
          const prev = where.get(key);
          if (prev === undefined) where.set(key, tag);
          else expect(tag, `key ${key} moved`).toBe(prev);
        }
      } finally {
        s.destroy();
      }
    }
    expect(new Set(where.values())).toEqual(new Set(['p0', 'p1', 'p2', 'p3']));
  });

  it('a frame field (the method, decoded from the body) is a key too', async () => {
    const port = await p.port('by_method');
    const seen: Record<string, Set<string>> = { hello: new Set(), bye: new Set() };
    for (let round = 0; round < 3; round++) {
      const s = await connect(port);
      try {
        for (let i = 0; i < 10; i++) for (const m of ['hello', 'bye']) seen[m]!.add(await call(s, round * 100 + i * 2 + (m === 'bye' ? 1 : 0) + 1, m, {}));
      } finally {
        s.destroy();
      }
    }
    // Every call of one method lands on one provider (at random they would cover several).
    expect(seen.hello!.size).toBe(1);
    expect(seen.bye!.size).toBe(1);
  });
});

describe('rpc_proxy hash_policy with Dubbo (apache dubbo-js client)', () => {
  const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
  const IFACE = 'com.example.UserService';
  type Provider = { port: number; close(): Promise<void> };
  type Result = { ok: true; value: string } | { ok: false; error: string };
  const providers: Provider[] = [];
  let p: StraitProcess;

  function dubboCall(port: number, method: string, count: number): Promise<Result[]> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [path.join(FIXTURES, 'dubbo_client.cjs'), String(port), IFACE, '1.0.0', '-', method, String(count), 'x'], { timeout: 20_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`dubbo_client failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    });
  }

  beforeAll(async () => {
    const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));
    for (let i = 0; i < 4; i++) providers.push(await startDubboProvider({ interface: IFACE, version: '1.0.0', name: `d${i}`, methods: ['hello', 'bye'] }));
    const eps = providers.map((x) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${x.port} } } }`).join('\n');
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${rpcProxyListener('dubbo', `          protocol: dubbo
          route_config:
          - interface: ${IFACE}
            routes:
            - match: {}
              route: { cluster: users, hash_policy: [ { field: METHOD } ] }`)}
  clusters:
  - name: users
    type: STATIC
    connect_timeout: 1s
    lb_policy: RING_HASH
    load_assignment:
      cluster_name: users
      endpoints:
      - lb_endpoints:
${eps}
`);
  });
  afterAll(async () => {
    await p?.stop();
    for (const x of providers) await x.close();
  });

  it('every call of one method reaches one provider', async () => {
    const port = await p.port('dubbo');
    for (const m of ['hello', 'bye']) {
      const rs = await dubboCall(port, m, 20);
      const names = new Set(rs.map((r) => (r.ok ? String(r.value).split(':')[0] : `error ${r.error}`)));
      expect(names.size, `${m}: ${[...names].join(', ')}`).toBe(1);
      expect([...names][0]).toMatch(/^d\d$/);
    }
  });
});
