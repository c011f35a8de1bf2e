import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTag } from '../helpers/net.js';
import { ADMIN, startStrait, tcpListener, type StraitProcess } from '../helpers/strait.js';
import { RestartableTag } from '../helpers/upstreams.js';

const mm = (version: string) => `          metadata_match: { filter_metadata: { envoy.lb: { version: ${version} } } }\n`;

function cluster(name: string, eps: Array<[RestartableTag, string]>, subset: string): string {
  const list = eps
    .map(([u, v]) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${u.port} } } }\n          metadata: { filter_metadata: { envoy.lb: { version: ${v} } } }`)
    .join('\n');
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    lb_subset_config:
${subset}    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${list}
`;
}

async function tags(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await fetchTag(port));
  return seen;
}

describe('subset load balancing (lb_subset_config + metadata_match)', () => {
  const ups = ['v1a', 'v1b', 'v2'].map((t) => new RestartableTag(t));
  let p: StraitProcess;
  beforeAll(async () => {
    for (const u of ups) await u.start();
    const eps: Array<[RestartableTag, string]> = [
      [ups[0]!, 'v1'],
      [ups[1]!, 'v1'],
      [ups[2]!, 'v2'],
    ];
    p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('to_v2', 'dflt', mm('v2'))}
${tcpListener('to_v3', 'dflt', mm('v3'))}
${tcpListener('plain', 'dflt')}
${tcpListener('strict_v3', 'strict', mm('v3'))}
${tcpListener('strict_plain', 'strict')}
  clusters:
${cluster('dflt', eps, `      fallback_policy: DEFAULT_SUBSET\n      default_subset: { version: v1 }\n      subset_selectors: [{ keys: [version] }]\n`)}
${cluster('strict', eps, `      subset_selectors: [{ keys: [version] }]\n`)}`);
  });
  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.stop();
  });

  it('sends metadata_match version=v2 to the v2 host only', async () => {
    expect(await tags(await p.port('to_v2'), 20)).toEqual(new Set(['v2']));
    expect(await p.stat('cluster.dflt.lb_subsets_active')).toBe(2);
    expect(await p.stat('cluster.dflt.lb_subsets_selected')).toBe(20);
  });

  it('falls back to the default subset for an unknown version and for no criteria', async () => {
    expect(await tags(await p.port('to_v3'), 20)).toEqual(new Set(['v1a', 'v1b']));
    expect(await tags(await p.port('plain'), 20)).toEqual(new Set(['v1a', 'v1b']));
    expect(await p.stat('cluster.dflt.lb_subsets_fallback')).toBe(40);
  });

  it('with NO_FALLBACK (the default), an unmatched request gets no host', async () => {
    expect(await tags(await p.port('strict_v3'), 3)).toEqual(new Set(['']));
    expect(await tags(await p.port('strict_plain'), 3)).toEqual(new Set(['']));
    expect(await p.stat('cluster.strict.upstream_cx_none_healthy')).toBe(6);
  });
});
