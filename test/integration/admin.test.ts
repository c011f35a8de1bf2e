import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedWithin, connect, echoServer, readAll } from '../helpers/net.js';
import { ADMIN, startStrait, staticCluster, tcpListener, type StraitProcess } from '../helpers/strait.js';

const PRIVATE_KEY = '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n';

describe('admin API', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    echo = await echoServer();
    strait = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('main', 'echo')}
  clusters:
${staticCluster('echo', [echo.port])}
  secrets:
  - name: server_cert
    tls_certificate:
      certificate_chain: { inline_string: "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n" }
      private_key: { inline_string: "${PRIVATE_KEY}" }
`);
  });

  afterAll(async () => {
    await strait?.stop();
    await echo?.close();
  });

  it('GET /ready answers 200 LIVE', async () => {
    expect(await strait.get('/ready')).toEqual({ status: 200, text: 'LIVE\n' });
  });

  it('GET /stats prints Envoy stat names', async () => {
    const s = await connect(await strait.port('main'));
    const got = readAll(s);
    s.end('hello');
    await got;
    await strait.waitStat('cluster.echo.upstream_cx_destroy', (v) => v === 1);
    const text = (await strait.get('/stats')).text;
    const port = await strait.port('main');
    for (const name of [
      `listener.127.0.0.1_${port}.downstream_cx_total: 1`,
      'cluster.echo.upstream_cx_total: 1',
      'cluster.echo.upstream_cx_active: 0',
      'cluster.echo.membership_total: 1',
      'tcp.main.downstream_cx_total: 1',
      'tcp.main.downstream_cx_rx_bytes_total: 5',
      'listener_manager.total_listeners_active: 1',
      'cluster_manager.active_clusters: 1',
      'server.live: 1',
    ]) {
      expect(text).toContain(name);
    }
    const json = JSON.parse((await strait.get('/stats?format=json&filter=^cluster\\.echo\\.')).text);
    expect(json.stats.every((s: { name: string }) => s.name.startsWith('cluster.echo.'))).toBe(true);
    expect(json.stats.length).toBeGreaterThan(5);
  });

  it('GET /stats/prometheus is valid exposition text with Envoy names and tags', async () => {
    const text = (await strait.get('/stats/prometheus')).text;
    const lines = text.trimEnd().split('\n');
    const typed = new Set<string>();
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+|NaN)$/;
    for (const line of lines) {
      const t = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/);
      if (t) {
        expect(typed.has(t[1]!), `duplicate TYPE for ${t[1]}`).toBe(false);
        typed.add(t[1]!);
        continue;
      }
      const m = line.match(sample);
      expect(m, `not a valid sample line: ${line}`).not.toBeNull();
      expect(typed.has(m![1]!), `sample before its TYPE: ${line}`).toBe(true);
    }
    expect(text).toContain('envoy_cluster_upstream_cx_total{envoy_cluster_name="echo"} 1');
    expect(text).toContain('# TYPE envoy_cluster_upstream_cx_active gauge');
    expect(text).toMatch(/envoy_listener_downstream_cx_total\{envoy_listener_address="127\.0\.0\.1_\d+"\} 1/);
    expect(text).toContain('envoy_tcp_downstream_cx_total{envoy_tcp_prefix="main"} 1');
  });

  it('GET /config_dump returns the running config with secrets redacted', async () => {
    const r = await strait.get('/config_dump');
    expect(r.status).toBe(200);
    const dump = JSON.parse(r.text);
    const types = dump.configs.map((c: { '@type': string }) => c['@type']);
    expect(types).toEqual([
      'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
      'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
    ]);
    const secret = dump.configs[0].bootstrap.static_resources.secrets[0].tls_certificate;
    expect(secret.private_key).toBe('[redacted]');
    expect(secret.certificate_chain.inline_string).toContain('BEGIN CERTIFICATE');
    expect(r.text).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
    expect(dump.configs[1].static_clusters[0].cluster.name).toBe('echo');
    expect(dump.configs[2].static_listeners[0].listener.name).toBe('main');
  });

  it('GET /clusters prints hosts in Envoy text and JSON form', async () => {
    const text = (await strait.get('/clusters')).text;
    expect(text).toContain(`echo::127.0.0.1:${echo.port}::cx_total::`);
    expect(text).toContain(`echo::127.0.0.1:${echo.port}::health_flags::healthy`);
    const json = JSON.parse((await strait.get('/clusters?format=json')).text);
    expect(json.cluster_statuses[0].host_statuses[0].address.socket_address.port_value).toBe(echo.port);
  });

  it('mutating endpoints require POST', async () => {
    for (const p of ['/healthcheck/fail', '/healthcheck/ok', '/drain_listeners', '/quitquitquit']) {
      expect((await strait.get(p)).status, p).toBe(405);
    }
    expect((await strait.get('/ready')).status).toBe(200);
  });

  it('POST /healthcheck/fail turns /ready to 503 until /healthcheck/ok', async () => {
    expect((await strait.post('/healthcheck/fail')).status).toBe(200);
    expect(await strait.get('/ready')).toEqual({ status: 503, text: 'DRAINING\n' });
    expect(await strait.stat('server.live')).toBe(0);
    expect((await strait.post('/healthcheck/ok')).status).toBe(200);
    expect(await strait.get('/ready')).toEqual({ status: 200, text: 'LIVE\n' });
  });

  it('binds admin only where configured', async () => {
    const port = Number(new URL(strait.admin).port);
    // 127.0.0.2 is loopback too: a wildcard bind would answer there.
    const err = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.2', port });
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(err).toBe('ECONNREFUSED');
  });

  it('POST /drain_listeners stops accepting while open connections carry on', async () => {
    const e2 = await echoServer();
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('d', 'e')}\n  clusters:\n${staticCluster('e', [e2.port])}`);
    try {
      const port = await p.port('d');
      const open = await connect(port);
      open.write('before');
      await new Promise((r) => open.once('data', r));
      expect((await p.post('/drain_listeners')).text).toBe('OK\n');
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.on('connect', () => resolve('connected'));
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(refused).toBe('ECONNREFUSED');
      const echoed = new Promise<string>((r) => open.once('data', (d) => r(String(d))));
      open.write('after');
      expect(await echoed).toBe('after');
      open.end();
      expect(await closedWithin(open, 3000)).toBe('closed');
    } finally {
      await p.stop();
      await e2.close();
    }
  });

  it('reads a JSON bootstrap as well as YAML', async () => {
    const { startStraitFile } = await import('../helpers/strait.js');
    const json = JSON.stringify({
      admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
      staticResources: {
        listeners: [
          {
            name: 'j',
            address: { socketAddress: { address: '127.0.0.1', portValue: 0 } },
            filterChains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 'j', cluster: 'echo' } }] }],
          },
        ],
        clusters: [{ name: 'echo', connectTimeout: '1s', loadAssignment: { clusterName: 'echo', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: echo.port } } } }] }] } }],
      },
    });
    const p = await startStraitFile('strait.json', json);
    try {
      const s = await connect(await p.port('j'));
      const got = readAll(s);
      s.end('json');
      expect((await got).toString()).toBe('json');
    } finally {
      await p.stop();
    }
  });

  it('POST /quitquitquit exits cleanly', async () => {
    const p = await startStrait(`${ADMIN}static_resources:\n  clusters:\n${staticCluster('e', [echo.port])}`);
    expect((await p.post('/quitquitquit')).text).toBe('OK\n');
    expect(await p.wait()).toBe(0);
    await p.stop();
  });
});
