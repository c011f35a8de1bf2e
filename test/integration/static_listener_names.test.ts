import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBootstrapText } from '../../src/config/index.js';
import { buildStaticConfig } from '../../src/static_config.js';
import { fetchTag, tagServer } from '../helpers/net.js';
import { ADMIN, staticCluster, startStrait, type StraitProcess } from '../helpers/strait.js';

/** A static listener without a name, as Envoy allows (only LDS listeners need one). */
function unnamedTcp(port: number, cluster: string): string {
  return `  - address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${cluster}
          cluster: ${cluster}
`;
}

function names(yaml: string): string[] {
  const { bootstrap } = parseBootstrapText(yaml, 'b.yaml', { keepErrors: true });
  return buildStaticConfig(bootstrap, 'b.yaml').listeners.map((l) => l.name);
}

describe('static listeners without a name', () => {
  it('are named after their address, the same way every time (hot restart hands listeners over by name)', () => {
    const yaml = `static_resources:
  listeners:
${unnamedTcp(0, 'c')}${unnamedTcp(0, 'c')}  - name: 127.0.0.1_7001
    address: { socket_address: { address: 127.0.0.1, port_value: 7002 } }
    filter_chains: [{ filters: [{ name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: c, cluster: c } }] }]
${unnamedTcp(7001, 'c')}  clusters:
${staticCluster('c', [1])}`;
    const first = names(yaml);
    // Two on port 0 cannot share a name; a given name keeps its own and the generated one moves.
    expect(first).toEqual(['127.0.0.1_0', '127.0.0.1_0#1', '127.0.0.1_7001', '127.0.0.1_7001#3']);
    expect(names(yaml)).toEqual(first);
  });

  describe('serving', () => {
    let up: Awaited<ReturnType<typeof tagServer>>;
    let strait: StraitProcess;
    beforeAll(async () => {
      up = await tagServer('through-unnamed');
      strait = await startStrait(`${ADMIN}static_resources:
  listeners:
${unnamedTcp(0, 'c')}  clusters:
${staticCluster('c', [up.port])}`);
    });
    afterAll(async () => {
      await strait?.stop();
      await up?.close();
    });

    it('starts and carries traffic (it used to be refused: listeners[0].name is required)', async () => {
      expect(await fetchTag(await strait.port('127.0.0.1_0'))).toBe('through-unnamed');
    });
  });
});
