// rpc_proxy routes pick the circuit-breaker priority of their calls (Strait's RouteAction.priority).
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ENGINES, REPO, rpcProxyListener, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));

type Result = { ok: true; value: unknown } | { ok: false; error: string };

function dubboCall(port: number, method: string, count: number, arg: string): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(FIXTURES, 'dubbo_client.cjs'), String(port), 'com.example.Busy', '1.0.0', '-', method, String(count), arg], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dubbo_client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(ENGINES.slice(0, 1))('rpc_proxy circuit breakers per priority on the %s engine', (engine) => {
  let busy: { port: number; close(): Promise<void> };
  let strait: StraitProcess;
  let port = 0;

  beforeAll(async () => {
    busy = await startDubboProvider({
      interface: 'com.example.Busy',
      version: '1.0.0',
      name: 'busy',
      methods: { slow: async () => (await delay(800), 'slow'), vip: async () => (await delay(800), 'vip') },
    });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: AUTO
          route_config:
          - interface: com.example.Busy
            routes:
            - match: { method: { name: { exact: vip } } }
              route: { cluster: busy, priority: HIGH }
            - match: {}
              route: { cluster: busy }`)}
  clusters:
${staticCluster('busy', [busy.port], '    circuit_breakers: { thresholds: [ { priority: DEFAULT, max_requests: 1 }, { priority: HIGH, max_requests: 10 } ] }\n')}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    await busy?.close();
  });

  it('refuses DEFAULT calls over their max_requests while HIGH calls to the same cluster all pass', async () => {
    const [slow, vip] = await Promise.all([dubboCall(port, 'slow', 3, 's'), dubboCall(port, 'vip', 3, 'v')]);
    expect(vip).toEqual([
      { ok: true, value: 'vip' },
      { ok: true, value: 'vip' },
      { ok: true, value: 'vip' },
    ]);
    expect(slow.filter((x) => x.ok)).toEqual([{ ok: true, value: 'slow' }]);
    expect(slow.filter((x) => !x.ok && x.error.includes('max_requests')).length).toBe(2);
    expect(await strait.stat('cluster.busy.upstream_rq_pending_overflow')).toBe(2);
    expect(await strait.stat('cluster.busy.circuit_breakers.high.rq_open')).toBe(0);
  });
});
