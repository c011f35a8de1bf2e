import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../src/xds/proto.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { REPO, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

type Obj = Record<string, any>;

const CORPUS = path.resolve(REPO, '../shared/corpus');

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== 'README.md') out.push(path.relative(CORPUS, p));
    }
  };
  walk(CORPUS);
  return out.sort();
}

/** What a file must be read as by the server (every corpus file is one of these). */
function expectedKind(file: string): string {
  // Istio networking objects are translated to xDS (what they yield depends on the other objects present).
  if (file.startsWith('istio-networking/')) return 'istio';
  if (file.endsWith('.golden') || file === 'istio/envoy_bootstrap.json' || file === 'envoy/google_com_proxy_port_0.yaml') return 'skipped';
  if (/configdump|config_dump/.test(file)) return 'config_dump';
  if (/^envoy\/(envoy-dynamic-(cds|lds)-demo|fcds\/|test-fcds\/lds)/.test(file)) return 'resource list';
  return 'bootstrap';
}

interface Outcome {
  accepted: Set<string>;
  /** name → the reason from /config_dump error_state. */
  failed: Map<string, string>;
}

function outcomes(configs: Obj[]): { clusters: Outcome; listeners: Outcome; warming: number } {
  const find = (k: string) => configs.find((c) => String(c['@type']).endsWith(k)) ?? {};
  const cd = find('ClustersConfigDump');
  const ld = find('ListenersConfigDump');
  const clusters: Outcome = { accepted: new Set(), failed: new Map() };
  for (const c of [...(cd.dynamic_active_clusters ?? []), ...(cd.dynamic_warming_clusters ?? [])]) {
    if (c.cluster) clusters.accepted.add(c.cluster.name);
  }
  for (const c of cd.dynamic_active_clusters ?? []) {
    // A NACKed cluster never accepted has no `cluster`, only the refused one in error_state.
    if (c.error_state) clusters.failed.set(c.cluster?.name ?? c.error_state.failed_configuration?.name, c.error_state.details);
  }
  const listeners: Outcome = { accepted: new Set(), failed: new Map() };
  for (const l of ld.dynamic_listeners ?? []) {
    if (l.active_state || l.warming_state) listeners.accepted.add(l.name);
    if (l.error_state) listeners.failed.set(l.name, l.error_state.details);
  }
  // A listener whose TLS needs secrets from the control plane's SDS warms until they come (Istio
  // sets initial_fetch_timeout 0s for them: forever, as in Envoy); the corpus serves none.
  const waitsForSecrets = (l: Obj) => JSON.stringify(l.warming_state).includes('sds_secret_config');
  const warming = (cd.dynamic_warming_clusters ?? []).length + (ld.dynamic_listeners ?? []).filter((l: Obj) => l.warming_state && !waitsForSecrets(l)).length;
  return { clusters, listeners, warming };
}

/**
 * Every corpus file, in turn, is the only content of the directory an xds-server serves to one
 * running Strait over delta ADS (what Istio uses). A sentinel listener and cluster, changed per
 * step and served last, tell when Strait has processed the step. Listener addresses are
 * rewritten to 127.0.0.1:0 so production ports and node IPs never bind on the test machine.
 */
describe('corpus replay through a real ADS stream', () => {
  let dir: string;
  let work: string;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  const files = corpusFiles();

  beforeAll(async () => {
    dir = tmpDir('strait-xds-corpus-');
    work = tmpDir('strait-xds-work-');
    xs = await startXdsServer(dir, { args: ['--listener-address', '127.0.0.1:0'] });
    strait = await startStrait(adsBootstrap(xs.port, 'DELTA_GRPC', 'corpus-node').replaceAll('initial_fetch_timeout: 2s', 'initial_fetch_timeout: 1s'), {
      args: ['--xds-snapshot', path.join(work, 'snapshot.json')],
    });
  });

  afterAll(async () => {
    await strait?.stop();
    await xs?.stop();
    for (const d of [dir, work]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('has the files the corpus README lists', () => {
    expect(files.length).toBeGreaterThanOrEqual(45);
    expect(files).toContain('istio/configdump.yaml');
    expect(files).toContain('envoy/envoy-dynamic-lds-demo.yaml');
  });

  const seen = { nacks: 0, acceptedListeners: 0, acceptedClusters: 0, privateSkips: 0 };
  const acceptedListenerNames = new Set<string>();

  it.each(files.map((f, i) => [f, i] as const))('%s: served, then each listener and cluster loads or is refused with a reason', async (file, step) => {
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    fs.copyFileSync(path.join(CORPUS, file), path.join(dir, path.basename(file)));
    const sentinel = `sentinel-${step}`;
    // The sentinel sorts last, so it is applied after everything else of the step.
    writeResources(dir, 'zzz-sentinel.yaml', [res.staticCluster(sentinel, 9), res.tcpListener(sentinel, sentinel)]);
    const logFrom = xs.logs.length;
    const straitLogFrom = strait.stderr.length;

    const read = await xs.waitLog((l) => l.msg === 'xds-server: read file' && l.file === path.basename(file), logFrom);
    expect(read.kind).toBe(expectedKind(file));

    await eventually(() => strait.port(sentinel), (p) => p > 0, 20_000, `sentinel ${sentinel} active`);
    // Warming clusters and listeners settle within initial_fetch_timeout (1 s).
    const dump = await eventually(async () => JSON.parse((await strait.get('/config_dump')).text).configs as Obj[], (c) => outcomes(c).warming === 0, 20_000, 'nothing warming');
    const { clusters, listeners } = outcomes(dump);

    // What the server served for this file, by the server's own reading of it.
    const mirror = tmpDir('strait-xds-mirror-');
    try {
      fs.copyFileSync(path.join(CORPUS, file), path.join(mirror, path.basename(file)));
      const served = loadResourceDir(mirror, { listenerAddress: { host: '127.0.0.1', port: 0 } }).resources;
      for (const [type, out] of [
        [CLUSTER_TYPE, clusters],
        [LISTENER_TYPE, listeners],
      ] as const) {
        for (const name of served.get(type)?.keys() ?? []) {
          const ok = out.accepted.has(name);
          const reason = out.failed.get(name);
          // Loaded, or refused with a reason that names what is wrong.
          if (!ok) {
            const nackLine = xs.logs.slice(logFrom).find((l) => l.msg === 'xds NACK' && String(l.error).includes(`"${name}"`));
            expect(reason ?? nackLine?.error, `${type} ${name} neither loaded nor refused with a reason`).toBeTruthy();
            expect(String(reason ?? nackLine?.error).length).toBeGreaterThan(10);
          }
          if (ok) seen[type === CLUSTER_TYPE ? 'acceptedClusters' : 'acceptedListeners']++;
          if (ok && type === LISTENER_TYPE) acceptedListenerNames.add(name);
        }
      }
    } finally {
      fs.rmSync(mirror, { recursive: true, force: true });
    }
    const nacks = xs.logs.slice(logFrom).filter((l) => l.msg === 'xds NACK');
    for (const n of nacks) expect(n.error, 'every NACK line names its resource').toMatch(/^(Cluster|Listener|ClusterLoadAssignment) "[^"]+": /m);
    seen.nacks += nacks.length;
    seen.privateSkips += (strait.stderr.slice(straitLogFrom).match(/skipped: [^"]*private or unknown extension type/g) ?? []).length;
    // Strait is alive and serving whatever the file did to it.
    expect((await strait.get('/ready')).status).toBe(200);
  });

  it('skipped Istio-private filters with a warning, NACKed unsupported parts, and loaded the rest', () => {
    // configdump.yaml alone has dozens of istio.stats / metadata exchange filters.
    expect(seen.privateSkips).toBeGreaterThan(20);
    expect(seen.nacks).toBeGreaterThan(0);
    expect(seen.acceptedClusters).toBeGreaterThan(5);
    expect(seen.acceptedListeners).toBeGreaterThan(0);
    // Istio's per-port outbound listeners (bind_to_port: false, reached from virtualOutbound), and
    // its inbound one with AuthorizationPolicy ALLOW and CUSTOM rules (istio_authn, RBAC
    // filter_state principals, ext_authz with the body): warming for its certificates.
    for (const name of ['virtualOutbound', '0.0.0.0_9080', '10.96.0.1_443', 'virtualInbound']) expect(acceptedListenerNames).toContain(name);
  });
});
