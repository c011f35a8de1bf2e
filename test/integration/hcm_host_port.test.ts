// The connection manager's strip_any_host_port and strip_matching_host_port (the second used to
// be refused), on HTTP/1.1 (undici) and HTTP/2 (node:http2) clients: the port leaves the Host /
// :authority before routing, and the upstream gets the bare host too, as Envoy rewrites the
// header itself; strip_matching_host_port leaves a port other than the one the client dialled.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cRequest, hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const ROUTES = `name: local
virtual_hosts:
- name: svc
  domains: ["svc"]
  routes: [ { match: { prefix: "/" }, route: { cluster: up } } ]
- name: other
  domains: ["*"]
  routes: [ { match: { prefix: "/" }, direct_response: { status: 418, body: { inline_string: "not svc" } } } ]`;

async function h1(port: number, host: string): Promise<{ status: number; host?: string }> {
  const r = await request(`http://127.0.0.1:${port}/`, { headers: { host } });
  const text = await r.body.text();
  return { status: r.statusCode, host: r.statusCode === 200 ? String((JSON.parse(text) as Echo).headers.host) : undefined };
}

async function h2(port: number, authority: string): Promise<{ status: number; host?: string }> {
  const r = await h2cRequest(port, { path: '/', authority });
  return { status: r.status, host: r.status === 200 ? String((JSON.parse(r.body) as Echo).headers.host) : undefined };
}

describe.each(['node', 'native'] as const)('strip_any_host_port and strip_matching_host_port with the %s h2 engine', (h2engine) => {
  let up: TestUpstream;
  let strait: StraitProcess;
  let any: number;
  let matching: number;

  beforeAll(async () => {
    up = await httpUpstream('A');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('any', ROUTES, '          strip_any_host_port: true\n')}
${hcmListener('matching', ROUTES, '          strip_matching_host_port: true\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine: ENGINES[0], args: ['--h2-engine', h2engine] },
    );
    any = await strait.port('any');
    matching = await strait.port('matching');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('strip_matching_host_port: the listener port goes, before routing and upstream; another port stays', async () => {
    expect(await h1(matching, `svc:${matching}`)).toEqual({ status: 200, host: 'svc' });
    expect(await h2(matching, `svc:${matching}`)).toEqual({ status: 200, host: 'svc' });
    expect((await h1(matching, 'svc:1234')).status).toBe(418);
    expect((await h2(matching, 'svc:1234')).status).toBe(418);
    // No port at all: routed as it is.
    expect(await h1(matching, 'svc')).toEqual({ status: 200, host: 'svc' });
  });

  it('strip_any_host_port: any port goes, and the upstream sees the bare host on both protocols', async () => {
    expect(await h1(any, 'svc:1234')).toEqual({ status: 200, host: 'svc' });
    expect(await h2(any, 'svc:1234')).toEqual({ status: 200, host: 'svc' });
  });
});
