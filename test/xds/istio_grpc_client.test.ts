import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, tmpDir } from '../helpers/strait.js';
import { startXdsServer, type XdsServerProcess } from '../helpers/xds.js';

const id = (b: Buffer) => b;
const HOST = 'echo.default.svc.cluster.local';

/** A gRPC server answering /test.Echo/Say with `echo-<tag>`. */
async function echoGrpc(tag: string): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(
    { Say: { path: '/test.Echo/Say', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
    { Say: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`echo-${tag}`)) },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, close: () => server.forceShutdown() };
}

const vs = (subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo }
spec:
  hosts: [echo]
  http: [{ route: [{ destination: { host: echo, subset: ${subset} } }] }]
`;

function write(dir: string, file: string, text: string): void {
  const tmp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path.join(dir, file));
}

/** gRPC's own xDS client, independent of Strait, reads the translated Istio configuration. */
describe('Istio objects resolved by @grpc/grpc-js-xds (xds:///host:port)', () => {
  let dir: string;
  let xs: XdsServerProcess;
  let a: Awaited<ReturnType<typeof echoGrpc>>;
  let b: Awaited<ReturnType<typeof echoGrpc>>;

  beforeAll(async () => {
    a = await echoGrpc('A');
    b = await echoGrpc('B');
    dir = tmpDir('strait-istio-grpc-');
    write(
      dir,
      'echo.yaml',
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo }
spec:
  hosts: [${HOST}]
  ports: [{ number: 7070, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { grpc: ${a.port} }, labels: { version: v1 } }
  - { address: 127.0.0.1, ports: { grpc: ${b.port} }, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo }
spec:
  host: echo
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
`,
    );
    write(dir, 'vs.yaml', vs('v1'));
    xs = await startXdsServer(dir, { args: ['--grpc-listeners'] });
  });

  afterAll(async () => {
    await xs?.stop();
    a?.close();
    b?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('calls the subset the VirtualService names, and follows the VirtualService to another subset', async () => {
    const bootstrap = { xds_servers: [{ server_uri: `127.0.0.1:${xs.port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }], node: { id: 'grpc-istio', cluster: 'grpc', locality: {} } };
    const p = spawn(process.execPath, [path.join(REPO, 'test/fixtures/xds/grpc_xds_client.mjs'), `${HOST}:7070`, 'echo-B'], {
      env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => p.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      p.stdout.on('data', (d) => {
        out += d;
        if (out.includes('echo-A\n')) resolve();
      });
      p.on('exit', () => reject(new Error(`client exited early:\n${out}\n${err}`)));
    });
    write(dir, 'vs.yaml', vs('v2'));
    expect(await exited).toBe(0);
    // Only v1 before the change, only v2 after: no error in between.
    expect(out.trim().split('\n')).toEqual(['echo-A', 'echo-B']);
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });
});
