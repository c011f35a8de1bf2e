import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, tmpDir } from '../helpers/strait.js';
import { res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

const id = (b: Buffer) => b;

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

/** gRPC's xDS client requires a weighted locality on every endpoint group (Envoy does not). */
const assignment = (name: string, port: number) => `- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: ${name}
  endpoints: [{ locality: { region: r1 }, load_balancing_weight: 1, lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`;

/** A gRPC client's view of a service: a Listener with an api_listener holding the routes. */
const apiListener = (name: string, cluster: string) => `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ${name}
      route_config:
        name: ${name}-routes
        virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "" }, route: { cluster: ${cluster} } }] }]
      http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
`;

/** An independent ADS client, gRPC's own xDS implementation, checks the server speaks the protocol as clients expect. */
describe('strait xds-server with @grpc/grpc-js-xds as the client', () => {
  let dir: string;
  let xs: XdsServerProcess;
  let a: Awaited<ReturnType<typeof echoGrpc>>;
  let b: Awaited<ReturnType<typeof echoGrpc>>;

  beforeAll(async () => {
    a = await echoGrpc('A');
    b = await echoGrpc('B');
    dir = tmpDir('strait-xds-grpc-');
    writeResources(dir, 'echo.yaml', [apiListener('echo-service', 'echo-cluster'), res.edsCluster('echo-cluster'), assignment('echo-cluster', a.port)]);
    xs = await startXdsServer(dir);
  });

  afterAll(async () => {
    await xs?.stop();
    a?.close();
    b?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves xds:///echo-service through LDS, CDS and EDS, and follows an endpoint change', async () => {
    const bootstrap = { xds_servers: [{ server_uri: `127.0.0.1:${xs.port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }], node: { id: 'grpc-client', cluster: 'grpc', locality: {} } };
    const p = spawn(process.execPath, [path.join(REPO, 'test/fixtures/xds/grpc_xds_client.mjs'), 'echo-service', 'echo-B'], {
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
        // Reached A through what the server sent: now move the endpoint to B.
        if (out.includes('echo-A\n')) resolve();
      });
      p.on('exit', () => reject(new Error(`client exited early:\n${out}\n${err}`)));
    });
    writeResources(dir, 'echo.yaml', [apiListener('echo-service', 'echo-cluster'), res.edsCluster('echo-cluster'), assignment('echo-cluster', b.port)]);
    expect(await exited).toBe(0);
    expect(out.trim().split('\n').filter((l) => l.startsWith('echo-'))).toEqual(['echo-A', 'echo-B']);
    // The client ACKed what it was sent: no NACK in the server's log.
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
    expect(xs.logs.some((l) => l.msg === 'xds client connected (state of the world)' && l.node === 'grpc-client')).toBe(true);
  });
});
