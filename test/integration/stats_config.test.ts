import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { REPO, runCli, startStraitFile, tmpDir, type StraitProcess } from '../helpers/strait.js';

const CORPUS = path.resolve(REPO, '..', 'shared', 'corpus');
/** Istio's sidecar stats_config as its bootstrap template renders it. */
const ISTIO_STATS = JSON.parse(fs.readFileSync(path.join(CORPUS, 'istio/default_golden.json'), 'utf8')).stats_config as Record<string, any>;

/**
 * A small bootstrap shaped as Istio's: a cluster whose `alt_stat_name` ends in `;` and an HCM
 * whose stat_prefix does (Istio's delimited stats tags), one HTTP listener, and `extra` fields.
 */
function bootstrap(cluster: string, port: number, extra: Record<string, unknown>): string {
  return JSON.stringify({
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'inbound',
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'inbound_0.0.0.0_8080;',
                    route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: cluster,
          alt_stat_name: `${cluster};`,
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
        },
      ],
    },
    ...extra,
  });
}

async function requests(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/r${i}`);
    expect(r.status).toBe(200);
    await r.text();
  }
}

describe("stats_config from Istio's bootstrap", () => {
  let up: TestUpstream;
  let strait: StraitProcess;

  beforeAll(async () => {
    up = await httpUpstream('up');
    // xds-grpc is a cluster Istio's inclusion list keeps; here it is just an HTTP upstream.
    strait = await startStraitFile('bootstrap.json', bootstrap('xds-grpc', up.port, { stats_config: ISTIO_STATS }));
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it("names and labels included stats with Istio's tags and drops the rest", async () => {
    await requests(await strait.port('inbound'), 3);
    await strait.waitStat('cluster.xds-grpc;.upstream_rq_total', (v) => v === 3);
    const text = (await strait.get('/stats/prometheus')).text;
    expect(text).toContain('# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{cluster_name="xds-grpc"} 3\n');
    expect(text).toContain('envoy_cluster_upstream_rq{cluster_name="xds-grpc",response_code="200"} 3');
    expect(text).toContain('envoy_cluster_upstream_rq{cluster_name="xds-grpc",response_code_class="2xx"} 3');
    expect(text).toContain('envoy_server_live 1');
    expect(text).toContain('# TYPE envoy_cluster_manager_active_clusters gauge');
    // The inclusion list has no http. or listener. entry: those stats do not exist.
    expect(text).not.toMatch(/^envoy_http_/m);
    expect(text).not.toMatch(/^envoy_listener_downstream/m);
    expect(text).not.toContain('envoy_cluster_name');
    const plain = (await strait.get('/stats')).text;
    expect(plain).toContain('cluster.xds-grpc;.upstream_rq_total: 3');
    expect(plain).not.toContain('http.inbound_0.0.0.0_8080;.');
    expect(plain).not.toMatch(/^listener\.127/m);
  });
});

interface Received {
  lines: string[];
}

async function udpCollector(): Promise<{ sock: dgram.Socket; port: number; got: Received }> {
  const sock = dgram.createSocket('udp4');
  const got: Received = { lines: [] };
  sock.on('message', (m) => got.lines.push(...m.toString().split('\n')));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { sock, port: sock.address().port, got };
}

/** The sum of every `<name>:<n>|c` counter delta received so far. */
function counterSum(lines: readonly string[], name: string, tail = ''): number {
  let sum = 0;
  for (const l of lines) {
    if (l.startsWith(`${name}:`) && l.endsWith(`|c${tail}`)) sum += Number(l.slice(name.length + 1, l.indexOf('|')));
  }
  return sum;
}

async function until(what: string, cond: () => boolean, got: Received, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received:\n${got.lines.slice(-40).join('\n')}`);
    await sleep(20);
  }
}

describe('stats_sinks: statsd and DogStatsD over UDP', () => {
  let up: TestUpstream;
  let strait: StraitProcess;
  let statsd: Awaited<ReturnType<typeof udpCollector>>;
  let dog: Awaited<ReturnType<typeof udpCollector>>;

  beforeAll(async () => {
    up = await httpUpstream('up');
    statsd = await udpCollector();
    dog = await udpCollector();
    // Istio's tags with its inclusion list widened to the HTTP and cluster stats under test.
    const stats_config = {
      ...ISTIO_STATS,
      stats_matcher: { inclusion_list: { patterns: [...ISTIO_STATS.stats_matcher.inclusion_list.patterns, { prefix: 'http.' }, { prefix: 'cluster.backend;.' }] } },
    };
    strait = await startStraitFile(
      'bootstrap.json',
      bootstrap('backend', up.port, {
        stats_config,
        stats_flush_interval: '0.1s',
        stats_sinks: [
          {
            name: 'envoy.stat_sinks.statsd',
            typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: { socket_address: { address: '127.0.0.1', port_value: statsd.port } }, prefix: 'mesh' },
          },
          {
            name: 'envoy.stat_sinks.dog_statsd',
            typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: { socket_address: { address: '127.0.0.1', port_value: dog.port } }, max_bytes_per_datagram: 1024 },
          },
          // Istio's all_golden.json has one; it stays reported and skipped.
          { name: 'envoy.stat_sinks.metrics_service', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig', transport_api_version: 'V3', grpc_service: { envoy_grpc: { cluster_name: 'backend' } } } },
        ],
      }),
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    statsd?.sock.close();
    dog?.sock.close();
  });

  it('sends counter deltas that add up to the requests, and gauges', async () => {
    const port = await strait.port('inbound');
    await requests(port, 3);
    await until('3 requests on statsd', () => counterSum(statsd.got.lines, 'mesh.cluster.backend;.upstream_rq_total') === 3, statsd.got);
    await requests(port, 4);
    await until('7 requests on statsd', () => counterSum(statsd.got.lines, 'mesh.cluster.backend;.upstream_rq_total') === 7, statsd.got);
    expect(counterSum(statsd.got.lines, 'mesh.http.inbound_0.0.0.0_8080;.downstream_rq_2xx')).toBe(7);
    expect(statsd.got.lines).toContain('mesh.server.live:1|g');
    // Excluded stats are not sent either.
    expect(statsd.got.lines.some((l) => l.startsWith('mesh.listener.'))).toBe(false);
    // Sent at least once more after the last increment: a zero delta, never a repeat of the total.
    await until('a later flush', () => statsd.got.lines.includes('mesh.cluster.backend;.upstream_rq_total:0|c'), statsd.got);
    expect(counterSum(statsd.got.lines, 'mesh.cluster.backend;.upstream_rq_total')).toBe(7);
    // Each request's time as a statsd timer, as Envoy sends histogram samples.
    const timers = statsd.got.lines.filter((l) => /^mesh\.cluster\.backend;\.upstream_rq_time:[\d.]+\|ms$/.test(l));
    expect(timers).toHaveLength(7);
    expect(statsd.got.lines.filter((l) => /^mesh\.http\.inbound_0\.0\.0\.0_8080;\.downstream_rq_time:[\d.]+\|ms$/.test(l))).toHaveLength(7);
  });

  it('DogStatsD gets the tag-extracted names with the tags', async () => {
    await until('7 requests on DogStatsD', () => counterSum(dog.got.lines, 'envoy.cluster.upstream_rq_total', '|#cluster_name:backend') === 7, dog.got);
    expect(counterSum(dog.got.lines, 'envoy.http.downstream_rq', '|#response_code_class:2xx,http_conn_manager_prefix:inbound_0.0.0.0_8080')).toBe(7);
    await until('7 timers on DogStatsD', () => dog.got.lines.filter((l) => /^envoy\.cluster\.upstream_rq_time:[\d.]+\|ms\|#cluster_name:backend$/.test(l)).length === 7, dog.got);
  });

  it('warns about the sink it does not run', () => {
    expect(strait.stderr).toContain('stats_sinks[2]');
    expect(strait.stderr).toMatch(/metrics_service is not implemented/);
  });
});

describe('stats_config and stats_sinks errors name the field path', () => {
  it('refuses bad tags, sinks and intervals at start-up', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(
      file,
      bootstrap('backend', 9, {
        stats_config: { stats_tags: [{ tag_name: 'x', regex: '^cluster\\.((.+?)\\.' }], stats_matcher: { inclusion_list: { patterns: [{ safe_regex: { regex: '(' } }] } } },
        stats_flush_interval: '600s',
        stats_sinks: [
          { name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', prefix: 'p' } },
          { name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', tcp_cluster_name: 'backend' } },
          { name: 'envoy.stat_sinks.dog_statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: { socket_address: { address: 'statsd.local', port_value: 8125 } } } },
        ],
      }),
    );
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    for (const f of [
      'stats_config.stats_tags[0].regex: invalid regex',
      'stats_config.stats_matcher.inclusion_list.patterns[0].safe_regex.regex',
      'stats_flush_interval',
      'stats_sinks[0].typed_config.address: is required',
      'stats_sinks[1].typed_config.tcp_cluster_name: is not supported',
      'stats_sinks[2].typed_config.address.socket_address.address: "statsd.local" is not an IP address',
    ]) {
      expect(r.stderr).toContain(f);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
