// Upstream HTTP/1.1 keep-alive connections close after common_http_protocol_options.idle_timeout
// without a request (Envoy's upstream_cx_idle_timeout), read from HttpProtocolOptions or, when
// that is absent, from the deprecated cluster field; 0s keeps them. The upstream counts the
// connections it accepted and sees them close, so the test observes the proxy's pool directly.
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingUpstream, hcmListener, type CountingUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IDLE_S = 0.25;

type Up = CountingUpstream;

function upstream(): Promise<Up> {
  // The proxy's idle timer, not the server's, must close the connection.
  return countingUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
}

const HPO = (common: string) => `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: ${common}
        explicit_http_config: { http_protocol_options: {} }
`;
const CLUSTERS = {
  typed: HPO(`{ idle_timeout: ${IDLE_S}s }`),
  legacy: `    common_http_protocol_options: { idle_timeout: ${IDLE_S}s }\n`,
  off: HPO('{ idle_timeout: 0s }'),
} as const;
type Name = keyof typeof CLUSTERS;
const NAMES = Object.keys(CLUSTERS) as Name[];

describe.each(ENGINES)('upstream HTTP/1.1 idle timeout (%s engine)', (engine) => {
  const ups = {} as Record<Name, Up>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    for (const n of NAMES) ups[n] = await upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
${NAMES.map((n) => `  - match: { prefix: "/${n}/" }\n    route: { cluster: ${n} }`).join('\n')}`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('edge', routes)}
  clusters:
${NAMES.map((n) => staticCluster(n, [ups[n].port], CLUSTERS[n])).join('')}`,
      { engine },
    );
    port = await strait.port('edge');
  });

  afterAll(async () => {
    await strait?.stop();
    for (const n of NAMES) ups[n]?.server.close();
  });

  const get = async (p: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: r.status, body: await r.text() };
  };

  it.each(['typed', 'legacy'] as const)('%s: an idle upstream connection closes after idle_timeout and is counted', async (name) => {
    expect(await get(`/${name}/a`)).toEqual({ status: 200, body: 'ok' });
    expect(ups[name].accepted).toBe(1);
    expect(await strait.waitStat(`cluster.${name}.upstream_cx_idle_timeout`, (v) => v === 1)).toBe(1);
    for (let i = 0; i < 100 && ups[name].closed === 0; i++) await sleep(20);
    expect(ups[name].closed).toBe(1);
    // The next request gets a new connection.
    expect(await get(`/${name}/b`)).toEqual({ status: 200, body: 'ok' });
    expect(ups[name].accepted).toBe(2);
  });

  it('0s keeps an idle upstream connection open', async () => {
    expect(await get('/off/a')).toEqual({ status: 200, body: 'ok' });
    await sleep(IDLE_S * 1000 * 4);
    expect(await get('/off/b')).toEqual({ status: 200, body: 'ok' });
    expect(ups.off.accepted).toBe(1);
    expect(ups.off.closed).toBe(0);
    expect((await strait.stat('cluster.off.upstream_cx_idle_timeout')) ?? 0).toBe(0);
  });
});
