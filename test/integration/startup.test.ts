import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBootstrapFile, redact } from '../../src/config/index.js';
import { setLogLevel } from '../../src/log.js';
import { Server } from '../../src/server.js';
import { buildStaticConfig } from '../../src/static_config.js';
import { fetchTag, tagServer } from '../helpers/net.js';
import { tmpDir } from '../helpers/strait.js';

/**
 * Start-up order, in process so the test controls when DNS answers: admin answers 503 while
 * clusters warm up, listeners bind only afterwards, then /ready turns 200 LIVE.
 */
describe('start-up', () => {
  setLogLevel('warn');
  it('answers /ready 503 until clusters are initialized, then 200 LIVE', async () => {
    const upstream = await tagServer('up');
    const dir = tmpDir();
    const file = path.join(dir, 'b.yaml');
    fs.writeFileSync(
      file,
      `admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: l
          cluster: slow_dns
  clusters:
  - name: slow_dns
    type: STRICT_DNS
    load_assignment:
      cluster_name: slow_dns
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: upstream.test, port_value: ${upstream.port} } } } }] }]
`,
    );
    const { bootstrap, warnings } = loadBootstrapFile(file);
    const config = buildStaticConfig(bootstrap as Record<string, unknown>, file, warnings);
    let answer!: (v: Array<{ address: string; family: number }>) => void;
    const server = new Server(config, bootstrap as Record<string, unknown>, {
      engine: 'node',
      drainTimeMs: 100,
      commandLine: [],
      redactedBootstrap: redact('envoy.config.bootstrap.v3.Bootstrap', bootstrap) as Record<string, unknown>,
      adminAddressPath: path.join(dir, 'admin'),
      resolver: () => new Promise((r) => (answer = r)),
    });
    server.onExit = () => {};
    const started = server.start();
    try {
      // Wait for the admin to come up, then it must say we are not ready.
      while (!fs.existsSync(path.join(dir, 'admin'))) await new Promise((r) => setTimeout(r, 10));
      const admin = `http://${fs.readFileSync(path.join(dir, 'admin'), 'utf8')}`;
      const r1 = await fetch(`${admin}/ready`);
      expect(r1.status).toBe(503);
      expect(await r1.text()).toBe('INITIALIZING\n');
      expect(server.listeners.all()).toHaveLength(0);
      answer([{ address: '127.0.0.1', family: 4 }]);
      await started;
      const r2 = await fetch(`${admin}/ready`);
      expect(r2.status).toBe(200);
      const port = server.listeners.all()[0]!.address!.port;
      expect(await fetchTag(port)).toBe('up');
    } finally {
      await server.shutdown(0);
      await upstream.close();
    }
  });
});
