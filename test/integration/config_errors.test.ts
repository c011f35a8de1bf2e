import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deadPort } from '../helpers/net.js';
import { runCli, tmpDir } from '../helpers/strait.js';

const GOOD_CLUSTER = `  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } }] }]
`;

function listener(name: string, typed: string, addr = '{ socket_address: { address: 127.0.0.1, port_value: 0 } }'): string {
  return `  - name: ${name}
    address: ${addr}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
${typed}`;
}

const TCP = '          stat_prefix: t\n          cluster: backend\n';

function cfg(listeners: string, clusters = GOOD_CLUSTER): string {
  return `static_resources:\n  listeners:\n${listeners}  clusters:\n${clusters}`;
}

function rpcListener(typed: string): string {
  return `  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
${typed}`;
}

/** [what, config text, expected fragments of stderr (path first, then the problem)]. */
const CASES: Array<[string, string, string[]]> = [
  ['unknown field', cfg(listener('l', TCP), GOOD_CLUSTER.replace('connect_timeout', 'conect_timeout')), ['static_resources.clusters[0].conect_timeout', 'unknown field', 'connect_timeout']],
  ['wrong scalar type', cfg(listener('l', TCP, '{ socket_address: { address: 127.0.0.1, port_value: "abc" } }')), ['static_resources.listeners[0].address.socket_address.port_value', 'uint32']],
  ['malformed duration', cfg(listener('l', TCP), GOOD_CLUSTER.replace('connect_timeout: 1s', 'connect_timeout: 1x')), ['static_resources.clusters[0].connect_timeout', 'duration']],
  ['unknown enum value', cfg(listener('l', TCP), GOOD_CLUSTER.replace('type: STATIC', 'type: STATIK')), ['static_resources.clusters[0].type', 'STRICT_DNS']],
  ['route to a missing cluster', cfg(listener('l', '          stat_prefix: t\n          cluster: nope\n')), ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster', 'unknown cluster "nope"']],
  ['unknown RPC codec', cfg(rpcListener('          codec: grpcweb\n')), ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.codec', 'unknown codec "grpcweb"', 'bolt']],
  ['RPC route to a missing cluster', cfg(rpcListener('          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: nope } } ] } ]\n')), ['typed_config.route_config[0].routes[0].route.cluster', 'unknown cluster "nope"']],
  ['duplicate listener name', cfg(listener('l', TCP) + listener('l', TCP)), ['static_resources.listeners[1].name', 'duplicate listener name "l"']],
  ['duplicate cluster name', cfg(listener('l', TCP), GOOD_CLUSTER + GOOD_CLUSTER), ['static_resources.clusters[1].name', 'duplicate cluster name "backend"']],
  [
    'unsupported filter',
    cfg(`  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: r
          settings: { op_timeout: 1s }
          prefix_routes: { catch_all_route: { cluster: backend } }
`),
    ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type', 'unsupported network filter'],
  ],
  ['unknown Any type', cfg(listener('l', TCP).replace('tcp_proxy.v3.TcpProxy', 'tcp_proxy.v3.TcpProxyy')), ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config', 'unknown type']],
  ['hostname in a STATIC cluster', cfg(listener('l', TCP), GOOD_CLUSTER.replace('address: 127.0.0.1', 'address: backend.local')), ['static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address', 'not an IP address']],
  ['missing required field (validate rule)', cfg(listener('l', '          cluster: backend\n')), ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix', 'at least 1']],
  ['two members of a oneof', cfg(listener('l', TCP + '          weighted_clusters: { clusters: [{ name: backend, weight: 1 }] }\n')), ['typed_config', 'cluster', 'weighted_clusters']],
  ['unsupported lb_policy', cfg(listener('l', TCP), GOOD_CLUSTER.replace('type: STATIC', 'type: STATIC\n    lb_policy: CLUSTER_PROVIDED')), ['static_resources.clusters[0].lb_policy', 'CLUSTER_PROVIDED']],
  ['maglev table size not prime', cfg(listener('l', TCP), GOOD_CLUSTER.replace('type: STATIC', 'type: STATIC\n    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 1000 }')), ['static_resources.clusters[0].maglev_lb_config.table_size', 'prime']],
  ['YAML syntax error', 'static_resources:\n  listeners: [\n    - name: x\n', ['line']],
  ['listener without filter chains', cfg('  - name: l\n    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n'), ['static_resources.listeners[0].filter_chains', 'at least one filter chain']],
  ['two listeners on one address', cfg(listener('a', TCP, '{ socket_address: { address: 127.0.0.1, port_value: 10555 } }') + listener('b', TCP, '{ socket_address: { address: 127.0.0.1, port_value: 10555 } }')), ['static_resources.listeners[1].address', 'already used']],
  ['max_connect_attempts below 1', cfg(listener('l', TCP + '          max_connect_attempts: 0\n')), ['typed_config.max_connect_attempts', '1']],
  ['port out of range', cfg(listener('l', TCP, '{ socket_address: { address: 127.0.0.1, port_value: 70000 } }')), ['static_resources.listeners[0].address.socket_address.port_value', '65535']],
  ['unknown top-level field', 'static_resourcez: {}\n', ['static_resourcez', 'unknown field']],
];

describe('bad configuration is rejected with the field path and the problem', () => {
  const dir = tmpDir();

  it.each(CASES)('%s', async (_what, text, fragments) => {
    const file = path.join(dir, `${_what.replace(/\W+/g, '_')}.yaml`);
    fs.writeFileSync(file, text);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    for (const f of fragments) expect(r.stderr).toContain(f);
    expect(r.stdout).not.toContain('OK');
  });

  it('reports every problem at once, not just the first', async () => {
    const text = cfg(
      listener('l', '          stat_prefix: t\n          cluster: nope\n') + listener('l', TCP),
      GOOD_CLUSTER.replace('connect_timeout', 'conect_timeout').replace('type: STATIC', 'type: STATIC\n    lb_policy: CLUSTER_PROVIDED'),
    );
    const file = path.join(dir, 'many.yaml');
    fs.writeFileSync(file, text);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(4 problems)');
    expect(r.stderr).toContain('static_resources.clusters[0].conect_timeout: unknown field');
    expect(r.stderr).toContain('unknown cluster "nope"');
    expect(r.stderr).toContain('duplicate listener name "l"');
    expect(r.stderr).toContain('lb_policy CLUSTER_PROVIDED is not supported');
  });

  it('starts nothing on a bad config: no admin, no listener, exit 1', async () => {
    const port = await deadPort();
    const admin = await deadPort();
    const text = `admin: { address: { socket_address: { address: 127.0.0.1, port_value: ${admin} } } }\n` +
      cfg(listener('l', '          stat_prefix: t\n          cluster: nope\n', `{ socket_address: { address: 127.0.0.1, port_value: ${port} } }`));
    const file = path.join(dir, 'serve.yaml');
    const addrFile = path.join(dir, 'admin.addr');
    fs.writeFileSync(file, text);
    const r = await runCli(['--config', file, '--admin-address-path', addrFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown cluster "nope"');
    expect(fs.existsSync(addrFile)).toBe(false);
    for (const p of [port, admin]) {
      const state = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: p });
        s.on('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(state).toBe('ECONNREFUSED');
    }
  });

  it('accepts a good config in validate mode', async () => {
    const file = path.join(dir, 'good.yaml');
    fs.writeFileSync(file, cfg(listener('l', TCP)));
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('OK');
  });
});
