import fs from 'node:fs';
import path from 'node:path';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

/** Envoy's filesystem-xDS form: a resource list holding one RouteConfiguration. */
function routeFile(name: string, cluster: string): string {
  return `version_info: "${cluster}"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: ${name}
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: "/" }
      route: { cluster: ${cluster} }
`;
}

/** Replaces the file the way Envoy documents it: write a temporary file, then rename over. */
function replace(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function rdsListener(name: string, source: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          rds:
            route_config_name: local
            config_source: ${source}
`;
}

describe.each(ENGINES.slice(0, 1))('static listener with rds from a file on the %s engine', (engine) => {
  let a: TestUpstream;
  let b: TestUpstream;
  let strait: StraitProcess;
  let pool: Pool;
  const dir = tmpDir();
  const file = path.join(dir, 'routes.yaml');

  beforeAll(async () => {
    [a, b] = await Promise.all([httpUpstream('a'), httpUpstream('b')]);
    fs.writeFileSync(file, routeFile('local', 'a'));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rdsListener('rds', `{ path_config_source: { path: ${JSON.stringify(file)} } }`)}
  clusters:
${staticCluster('a', [a.port])}
${staticCluster('b', [b.port])}`,
      { engine },
    );
    pool = new Pool(`http://127.0.0.1:${await strait.port('rds')}`, { connections: 4 });
  });

  afterAll(async () => {
    await pool?.close();
    await strait?.stop();
    await Promise.all([a?.close(), b?.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function who(): Promise<{ status: number; tag: string }> {
    const r = await pool.request({ path: '/x', method: 'GET' });
    await r.body.text();
    return { status: r.statusCode, tag: String(r.headers['x-upstream'] ?? '') };
  }

  it('serves the routes read from the file', async () => {
    expect(await who()).toEqual({ status: 200, tag: 'a' });
  });

  it('swaps the table when the file is replaced, with no failed request under traffic', async () => {
    const results: Array<{ status: number; tag: string }> = [];
    let stop = false;
    // Four clients keep requests in flight across the swap.
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) results.push(await who());
      }),
    );
    await eventually(async () => results.length, (n) => n >= 20, 10_000, 'traffic before the swap');
    replace(file, routeFile('local', 'b'));
    await eventually(async () => results.filter((r) => r.tag === 'b').length, (n) => n >= 20, 10_000, 'traffic routed by the new table');
    stop = true;
    await load;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    // Once b answered, a never answers again: the swap is one step, not a mix.
    const firstB = results.findIndex((r) => r.tag === 'b');
    expect(firstB).toBeGreaterThan(0);
    expect(await strait.stat('http.rds.rds.local.config_reload')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a bad update with its field path and keeps the old table', async () => {
    const before = (await strait.stat('http.rds.rds.local.update_rejected')) ?? 0;
    replace(file, routeFile('local', 'nope'));
    await strait.waitStat('http.rds.rds.local.update_rejected', (v) => v >= before + 1);
    // The log line (JSON) names the file's field path and the problem. The counter can move
    // before the line has come through the stderr pipe: wait for it, then assert.
    await eventually(async () => strait.stderr, (e) => e.includes('unknown cluster \\"nope\\"'), 5_000, 'the rejection log line').catch(() => {});
    expect(strait.stderr).toContain('"field":"resources[0].virtual_hosts[0].routes[0].route.cluster"');
    expect(strait.stderr).toContain('unknown cluster \\"nope\\"');
    expect(await who()).toEqual({ status: 200, tag: 'b' });

    replace(file, 'resources: [ {');
    await strait.waitStat('http.rds.rds.local.update_rejected', (v) => v >= before + 2);
    expect(await who()).toEqual({ status: 200, tag: 'b' });

    // A good file after bad ones is taken again.
    replace(file, routeFile('local', 'a'));
    await eventually(async () => (await who()).tag, (t) => t === 'a', 10_000, 'routes back to a');
  });
});

describe('rds from a file: config errors', () => {
  const dir = tmpDir();
  const cluster = staticCluster('a', [9]);
  const write = (name: string, source: string) => {
    const f = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(f, `static_resources:\n  listeners:\n${rdsListener('l', source)}  clusters:\n${cluster}`);
    return f;
  };

  it('accepts the older config_source.path form', async () => {
    const routes = path.join(dir, 'ok-routes.yaml');
    fs.writeFileSync(routes, routeFile('local', 'a'));
    const r = await runCli(['--config', write('older', `{ path: ${JSON.stringify(routes)} }`), '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(0);
  });

  it.each([
    ['a missing file', () => path.join(dir, 'absent.yaml'), ['rds.config_source.path_config_source.path', 'ENOENT']],
    ['a file without the named RouteConfiguration', () => (fs.writeFileSync(path.join(dir, 'other.yaml'), routeFile('other', 'a')), path.join(dir, 'other.yaml')), ['rds.config_source.path_config_source.path', 'no RouteConfiguration named "local"']],
    ['a route to an unknown cluster', () => (fs.writeFileSync(path.join(dir, 'bad.yaml'), routeFile('local', 'nope')), path.join(dir, 'bad.yaml')), ['routes[0].route.cluster', 'unknown cluster "nope"']],
  ])('rejects %s with the field path', async (what, mk, fragments) => {
    const r = await runCli(['--config', write(what.replace(/\W+/g, '_'), `{ path_config_source: { path: ${JSON.stringify(mk())} } }`), '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    for (const f of fragments) expect(r.stderr).toContain(f);
  });

  it('refuses RDS over ADS on a static listener without dynamic_resources', async () => {
    const r = await runCli(['--config', write('ads', '{ ads: {} }'), '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('rds.config_source.ads');
  });
});

describe('static listener with rds over ADS', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let xds: XdsServerProcess;
  let strait: StraitProcess;
  const dir = tmpDir('strait-xds-dir-');
  const route = (cluster: string) => `- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes: [{ match: { prefix: "/" }, route: { cluster: ${cluster} } }]
`;

  beforeAll(async () => {
    [a, b] = await Promise.all([httpUpstream('a'), httpUpstream('b')]);
    writeResources(dir, 'routes.yaml', [route('a')]);
    xds = await startXdsServer(dir);
    strait = await startStrait(adsBootstrap(xds.port, 'GRPC', 'static-rds', `${staticCluster('a', [a.port])}${staticCluster('b', [b.port])}  listeners:\n${rdsListener('srds', '{ ads: {}, resource_api_version: V3 }')}`));
  });

  afterAll(async () => {
    await strait?.stop();
    await xds?.stop();
    await Promise.all([a?.close(), b?.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('subscribes to the route configuration and follows its updates', async () => {
    const url = `http://127.0.0.1:${await strait.port('srds')}/x`;
    const tag = async () => {
      const r = await request(url);
      await r.body.text();
      return String(r.headers['x-upstream'] ?? r.statusCode);
    };
    await eventually(tag, (t) => t === 'a', 15_000, 'routes from ADS');
    writeResources(dir, 'routes.yaml', [route('b')]);
    await eventually(tag, (t) => t === 'b', 15_000, 'updated routes from ADS');
  });
});
