import { describe, expect, it } from 'vitest';
import { fetchTag, tagServer } from '../helpers/net.js';
import { ADMIN, startStrait, staticCluster } from '../helpers/strait.js';

describe('envoy.filters.network.local_ratelimit', () => {
  it('closes connections beyond the token bucket before the next filter sees them', async () => {
    const up = await tagServer('ok');
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: lim
          token_bucket: { max_tokens: 3, tokens_per_fill: 1, fill_interval: 3600s }
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: l
          cluster: up
  clusters:
${staticCluster('up', [up.port])}`);
    try {
      const port = await p.port('l');
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push(await fetchTag(port));
      expect(got).toEqual(['ok', 'ok', 'ok', '', '']);
      expect(await p.stat('local_ratelimit.lim.rate_limited')).toBe(2);
      // The limited connections never reached tcp_proxy.
      expect(await p.stat('tcp.l.downstream_cx_total')).toBe(3);
    } finally {
      await p.stop();
      await up.close();
    }
  });

  it('refuses a chain that ends in the rate limiter, and a fill interval under 50ms', async () => {
    const { runCli, tmpDir } = await import('../helpers/strait.js');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = tmpDir();
    const cfg = path.join(dir, 'bad.yaml');
    const write = (interval: string) => fs.writeFileSync(
      cfg,
      `static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: lim
          token_bucket: { max_tokens: 3, fill_interval: ${interval} }
`,
    );
    write('0.01s');
    const r = await runCli(['--config', cfg, '--mode', 'validate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('static_resources.listeners[0].filter_chains[0].filters[0].typed_config.token_bucket.fill_interval');
    write('1s');
    const r2 = await runCli(['--config', cfg, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r2.code).not.toBe(0);
    expect(r2.stderr + r2.stdout).toContain('the last filter of a chain must be a terminal filter');
  });
});
