import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, tagServer } from '../helpers/net.js';
import { ADMIN, ENGINES, staticCluster, startStrait, type StraitProcess } from '../helpers/strait.js';

/**
 * `filter_chain_matcher` on a real listener, in the shape of Istio's ambient waypoint: a tree on
 * the destination IP (xds IPMatcher), then, nested, one on the application protocol the
 * http_inspector found. Every chain is a tcp_proxy to an upstream that answers its own name, so
 * the answer tells which chain the connection got.
 */
const NET = 'type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.';
const act = (chain: string) => `{ action: { name: ${chain}, typed_config: { "@type": type.googleapis.com/google.protobuf.StringValue, value: ${chain} } } }`;
const chain = (name: string) => `    - name: ${name}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: ${name}, cluster: ${name} }
`;

const CHAINS = ['two', 'http', 'tcp', 'fallback'] as const;

function config(ports: Record<string, number>): string {
  return `${ADMIN}static_resources:
  listeners:
  - name: waypoint
    address: { socket_address: { address: 0.0.0.0, port_value: 0 } }
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }
    filter_chain_matcher:
      matcher_tree:
        input: { name: ip, typed_config: { "@type": ${NET}DestinationIPInput } }
        custom_match:
          name: ip
          typed_config:
            "@type": type.googleapis.com/xds.type.matcher.v3.IPMatcher
            range_matchers:
            - ranges: [{ address_prefix: 127.0.0.2, prefix_len: 32 }]
              on_match: ${act('two')}
            - ranges: [{ address_prefix: 127.0.0.4, prefix_len: 32 }]
              on_match: ${act('no-such-chain')}
            - ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }]
              on_match:
                matcher:
                  matcher_tree:
                    input: { name: alpn, typed_config: { "@type": ${NET}ApplicationProtocolInput } }
                    exact_match_map:
                      map:
                        "'http/1.1'": ${act('http')}
                        "'h2c'": ${act('http')}
                  on_no_match: ${act('tcp')}
    filter_chains:
${chain('two')}${chain('http')}${chain('tcp')}    default_filter_chain:
      name: fallback
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: fallback, cluster: fallback }
  - name: classic
    address: { socket_address: { address: 0.0.0.0, port_value: 0 } }
    filter_chains:
    - filter_chain_match: { prefix_ranges: [{ address_prefix: 127.0.0.2, prefix_len: 32 }] }
${chain('two').replace('    - name: two\n', '      name: two\n')}    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: tcp }
  clusters:
${CHAINS.map((c) => staticCluster(c, [ports[c]!])).join('')}`;
}

/** Sends `first` to host:port and returns what comes back (the tag of the chain's upstream). */
async function answer(host: string, port: number, first: string): Promise<string> {
  const s = net.connect({ host, port });
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  s.write(first);
  return (await readAll(s)).toString();
}

describe.each(ENGINES)('filter_chain_matcher (%s engine)', (engine) => {
  const ups: Array<Awaited<ReturnType<typeof tagServer>>> = [];
  let strait: StraitProcess;
  let port = 0;
  beforeAll(async () => {
    const ports: Record<string, number> = {};
    for (const c of CHAINS) {
      const u = await tagServer(c);
      ups.push(u);
      ports[c] = u.port;
    }
    strait = await startStrait(config(ports), { engine });
    port = await strait.port('waypoint');
  });
  afterAll(async () => {
    await strait?.stop();
    for (const u of ups) await u.close();
  });

  it('chooses by destination IP, the most specific range first', async () => {
    expect(await answer('127.0.0.2', port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n')).toBe('two');
  });

  it('falls to the wider range, then chooses by what the http_inspector found', async () => {
    expect(await answer('127.0.0.1', port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n')).toBe('http');
    expect(await answer('127.0.0.3', port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toBe('http');
    expect(await answer('127.0.0.1', port, '\x00\x01binary protocol\r\n')).toBe('tcp');
  });

  it('an action naming a chain the listener lacks gets the default chain', async () => {
    expect(await answer('127.0.0.4', port, 'hello\r\n')).toBe('fallback');
  });

  // The same fact through filter_chain_match: on a wildcard listener the native engine used to
  // report the listener's 0.0.0.0 as every connection's local address, so no prefix range held.
  it('filter_chain_match prefix_ranges see the address the client dialled on a wildcard listener', async () => {
    const classic = await strait.port('classic');
    expect(await answer('127.0.0.2', classic, 'x')).toBe('two');
    expect(await answer('127.0.0.1', classic, 'x')).toBe('tcp');
  });
});
