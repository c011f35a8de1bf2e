// Hot restart with HTTP/2 clients: an HTTP/2 connection carries HPACK and stream state that
// cannot move to another process, so the previous process must tell its HTTP/2 clients to go
// (GOAWAY, in-flight streams finish) while the new one accepts them, as Envoy does on drain.
// A gRPC client (@grpc/grpc-js) calls at a steady rate with several calls in flight through two
// upgrades, on both h2 engines: no call may fail, and the previous process must exit because
// its clients left (its last log line says no connection was open), not because
// --parent-shutdown-time-s cut them off.
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStraitFile, staticCluster, type StraitProcess } from '../helpers/strait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const id = (b: Buffer) => b;
const SERVICE = {
  unary: { path: '/t.S/Unary', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
} as unknown as grpc.ServiceDefinition;
type SClient = grpc.Client & { unary: (req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void };
const SClient = grpc.makeGenericClientConstructor(SERVICE, 'S') as unknown as new (addr: string, creds: grpc.ChannelCredentials, opts?: object) => SClient;

describe.each(['native', 'node'] as const)('hot restart with HTTP/2 clients on the %s h2 engine', (h2engine) => {
  let server: grpc.Server;
  let grpcPort: number;
  let web: http.Server;
  const procs: StraitProcess[] = [];
  const baseId = 2000 + Math.floor(Math.random() * 100000);

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(SERVICE, {
      // A little latency, so calls are in flight whenever an upgrade happens.
      unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => setTimeout(() => cb(null, Buffer.concat([Buffer.from('echo:'), call.request])), 5),
    });
    grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    web = http.createServer((_req, res) => res.end('web'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    server?.forceShutdown();
    web?.close();
  });

  it('moves gRPC clients to the new process through two upgrades without a failed call', async () => {
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/t.S/" }
    route: { cluster: grpc, timeout: 0s }`;
    const cfg = `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('grpc', [grpcPort], '    http2_protocol_options: {}\n')}`;
    const start = (epoch: number) =>
      startStraitFile('strait.yaml', cfg, {
        engine: ENGINES[0]!,
        args: ['--h2-engine', h2engine, '--base-id', String(baseId), '--restart-epoch', String(epoch), '--parent-shutdown-time-s', '30', '--log-level', 'info'],
        waitReady: epoch === 0,
      });
    let current = await start(0);
    procs.push(current);
    const port = await current.port('mesh');
    const client = new SClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const call = (i: number) =>
      new Promise<void>((resolve) => {
        client.unary(Buffer.from(`c${i}`), new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) => {
          if (!err && res?.toString() === `echo:c${i}`) ok++;
          else failures.push(err ? `${err.code} ${err.details}` : `bad answer ${res?.toString()}`);
          resolve();
        });
      });
    const load = (async () => {
      let i = 0;
      while (running) {
        await Promise.all([0, 1, 2, 3].map(() => call(i++)));
        await sleep(2);
      }
    })();

    for (let epoch = 1; epoch <= 2; epoch++) {
      await sleep(300);
      const before = ok;
      const next = await start(epoch);
      procs.push(next);
      // The previous process exits once its HTTP/2 clients have moved to the new one.
      expect(await current.wait()).toBe(0);
      const last = current.stderr.split('\n').find((l) => l.includes('hot restart: handover done'));
      expect(last, 'the previous process logged its exit').toBeTruthy();
      expect(JSON.parse(last!).open).toBe(0);
      await next.waitReady();
      current = next;
      expect(await current.port('mesh')).toBe(port);
      await sleep(200);
      expect(ok).toBeGreaterThan(before);
    }
    running = false;
    await load;
    client.close();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
  }, 60_000);

  it('tells HTTP/2 clients to go (GOAWAY, NO_ERROR) when the listeners drain, and lets the open stream finish', async () => {
    const web2 = http.createServer((_req, res) => setTimeout(() => res.end('slow'), 300));
    await new Promise<void>((r) => web2.listen(0, '127.0.0.1', () => r()));
    const p = await startStraitFile(
      'strait.yaml',
      `${ADMIN}static_resources:
  listeners:
${hcmListener('h2', `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }`)}
  clusters:
${staticCluster('web', [(web2.address() as net.AddressInfo).port])}`,
      { engine: ENGINES[0]!, args: ['--h2-engine', h2engine] },
    );
    procs.push(p);
    const s = http2.connect(`http://127.0.0.1:${await p.port('h2')}`);
    s.on('error', () => {});
    const goaway = new Promise<number>((resolve) => s.on('goaway', (code) => resolve(code)));
    const answer = new Promise<string>((resolve) => {
      const rq = s.request({ ':path': '/slow' });
      let body = '';
      rq.setEncoding('utf8');
      rq.on('data', (d: string) => (body += d));
      rq.on('end', () => resolve(body));
      rq.on('error', (e) => resolve(`error ${e.message}`));
    });
    await new Promise((r) => setTimeout(r, 100)); // the request is with the upstream
    expect((await p.post('/drain_listeners')).status).toBe(200);
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(await answer).toBe('slow');
    s.close();
    web2.close();
  });
});
