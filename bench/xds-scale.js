// xDS at scale: how long Strait takes to receive, warm and apply C clusters with E endpoints
// over delta ADS, what that costs in memory, and an EDS update replacing half of the endpoints
// while HTTP load runs through Strait to a cluster whose endpoints are among those replaced.
//
//   node bench/xds-scale.js [--clusters 1000] [--endpoints 10000] [--seconds 3] [--engine native] [--on-demand] [--json]
// --on-demand adds a row: a sidecar with on-demand clusters on the same mesh (one more start-up).
// Also run by bench/run.js, which puts the table in the report.
//
// The control plane is the embedded ADS server (dist/xds/server) in this process: it is what
// `strait xds-server` runs, minus the directory reading, so the clock starts at the push itself.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';

// The embedded server logs through Strait's logger: keep the bench's output to its report.
process.env.STRAIT_LOG_LEVEL ??= 'warn';

const REPO = path.resolve(process.env.BENCH_STRAIT_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));

const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const ENDPOINT_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
/** Real upstreams behind the loaded cluster: its endpoints are drawn from these ports. */
const REAL_UPSTREAMS = 20;

export const XDS_SCALE_HOW =
  'Strait (delta ADS, DELTA_GRPC, log level info) against the embedded ADS server in the bench process. "apply" row: Strait starts on an empty configuration; one push ' +
  'then brings C clusters (type EDS), their E endpoints (E/C each) and one HTTP listener; the time is from the push to the server receiving the last of the CDS, EDS and LDS ' +
  'ACKs (each sent after that update was decoded, validated and applied: clusters warmed on their endpoints and swapped in, the listener bound); RSS of that process before ' +
  'the push and 0.3 s after the last ACK. "EDS churn" row: an undici client with 16 keep-alive connections sends GETs back to back through the listener to cluster svc-0; ' +
  'after a third of the run (at least a third more follows the ACK) one delta push replaces half of every cluster\'s endpoints (E/2 in all, svc-0 included: its endpoints are real node:http upstreams, old and new ' +
  'all stay up); "apply" is from the push to the ACK of that EDS response (decode, validate and swap of every cluster\'s hosts). "failed" counts responses other than 200 and errors; wanted 0. ' +
  'On-demand row (full profile): a second sidecar with node.metadata.STRAIT_ON_DEMAND_CLUSTERS on the same server; clusters it holds and its RSS once its route\'s cluster arrived.';

async function load(rel) {
  return import(pathToFileURL(path.join(REPO, 'dist', rel)).href);
}

function upstream() {
  let served = 0;
  const server = http.createServer((_req, res) => {
    served++;
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        get served() {
          return served;
        },
        close() {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

/** `n` endpoints for cluster `i`, generation `gen` (which half changed). svc-0 uses the real upstream ports. */
function endpointsOf(i, n, gen, realPorts) {
  const out = [];
  for (let k = 0; k < n; k++) {
    // Generation 1 replaces the second half of every cluster's endpoints.
    const replaced = gen > 0 && k >= n / 2;
    if (i === 0) {
      const port = realPorts[(replaced ? n + k : k) % realPorts.length];
      out.push({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } });
    } else {
      // Never connected to (only svc-0 takes traffic): distinct addresses so every host is its own.
      const octet = 2 + (k % 250);
      const port = 10_000 + ((i * n + k + (replaced ? 40_000 : 0)) % 55_000);
      out.push({ endpoint: { address: { socket_address: { address: `127.1.${Math.floor(i / 250) % 250}.${octet}`, port_value: port } } } });
    }
  }
  return out;
}

function listener() {
  return {
    name: 'web',
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'web',
              route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc-0' } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

/** The snapshot the server serves: C clusters, their assignments (generation `gen`), one listener. */
function snapshot(res, { clusters, endpoints, gen, realPorts, version }) {
  const per = Math.max(1, Math.round(endpoints / clusters));
  const served = (type, name, value) => {
    const any = res.encodeAny(type, value);
    return [name, { name, version: res.contentVersion(any), any, origin: 'bench' }];
  };
  const cds = new Map();
  const eds = new Map();
  for (let i = 0; i < clusters; i++) {
    const name = `svc-${i}`;
    cds.set(...served(CLUSTER_TYPE, name, { name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } }));
    eds.set(...served(ENDPOINT_TYPE, name, { cluster_name: name, endpoints: [{ lb_endpoints: endpointsOf(i, per, gen, realPorts) }] }));
  }
  const lds = new Map(clusters ? [served(LISTENER_TYPE, 'web', listener())] : []);
  return { version: String(version), resources: new Map([[CLUSTER_TYPE, cds], [ENDPOINT_TYPE, eds], [LISTENER_TYPE, lds]]) };
}

function bootstrap(port, onDemand = false) {
  return `node: { id: bench-scale${onDemand ? '-od' : ''}, cluster: bench${onDemand ? ', metadata: { STRAIT_ON_DEMAND_CLUSTERS: true }' : ''} }
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [ { envoy_grpc: { cluster_name: xds-grpc } } ]
  lds_config: { ads: {}, initial_fetch_timeout: 60s, resource_api_version: V3 }
  cds_config: { ads: {}, initial_fetch_timeout: 60s, resource_api_version: V3 }
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`;
}

function rssOf(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Starts Strait against the server at `port`; resolves once /ready answers 200. */
async function startStrait(port, engine, dir, onDemand = false) {
  fs.writeFileSync(path.join(dir, 'strait.yaml'), bootstrap(port, onDemand));
  const adminFile = path.join(dir, 'admin');
  fs.rmSync(adminFile, { force: true }); // a previous process's address must not be read as this one's
  // Info level: the default a sidecar runs at (it logs every cluster that becomes active).
  const proc = spawn(
    process.execPath,
    [path.join(REPO, 'bin/strait.js'), '--config', path.join(dir, 'strait.yaml'), '--io-engine', engine, '--log-level', 'info', '--admin-address-path', adminFile, '--xds-snapshot', path.join(dir, 'snapshot.json')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Drained (a full pipe would stall the proxy); errors are passed on.
  proc.stderr.on('data', (d) => {
    for (const l of String(d).split('\n')) if (l.includes('"level":50') || l.includes('"level":60')) process.stderr.write(`${l}\n`);
  });
  let admin = '';
  for (let i = 0; i < 6000 && !admin; i++) {
    if (fs.existsSync(adminFile)) admin = fs.readFileSync(adminFile, 'utf8').trim();
    if (!admin) await sleep(10);
  }
  if (!admin) {
    proc.kill('SIGKILL');
    throw new Error('strait did not start');
  }
  for (let i = 0; i < 6000 && (await fetch(`http://${admin}/ready`).then((r) => r.status, () => 0)) !== 200; i++) await sleep(10);
  return { proc, admin };
}

/** Resolves when the server sees an ACK of `type` at `version` (the client applied it). */
function ackOf(server, type, version) {
  return acksOf(server, [type], version);
}

/** Resolves when every one of `types` was ACKed at `version` (the last of them applied). */
function acksOf(server, types, version) {
  const waiting = new Set(types);
  return new Promise((resolve, reject) => {
    server.events.onAck = (i) => {
      if (i.version === version && waiting.delete(i.typeUrl) && !waiting.size) resolve(performance.now());
    };
    server.events.onNack = (i) => {
      if (waiting.has(i.typeUrl)) reject(new Error(`NACK: ${i.message.slice(0, 300)}`));
    };
  });
}

export async function runXdsScale({ clusters = 1000, endpoints = 10_000, seconds = 3, engine = 'native', onDemand = false } = {}) {
  const { AdsServer } = await load('xds/server/ads_server.js');
  const res = await load('xds/resources.js');
  const ups = await Promise.all(Array.from({ length: REAL_UPSTREAMS }, upstream));
  const realPorts = ups.map((u) => u.port);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-bench-xds-'));
  const server = new AdsServer();
  const port = await server.listen('127.0.0.1', 0);
  const procs = [];
  try {
    // A running sidecar with nothing yet, then one push of everything: no process start-up in
    // the figure, and the RSS difference is what the configuration costs in that process.
    server.update(snapshot(res, { clusters: 0, endpoints: 0, gen: 0, realPorts, version: 1 }));
    const full = await startStrait(port, engine, dir);
    procs.push(full.proc);
    await sleep(300);
    const baseRss = rssOf(full.proc.pid);
    const first = snapshot(res, { clusters, endpoints, gen: 0, realPorts, version: 2 });
    const applied = acksOf(server, [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE], '2');
    const tPush = performance.now();
    server.update(first);
    const tApplied = await Promise.race([applied, sleep(120_000).then(() => NaN)]);
    await sleep(300);
    const fullRss = rssOf(full.proc.pid);
    const apply = { clusters, endpoints, apply_ms: Math.round(tApplied - tPush), rss_before_mib: +(baseRss / 2 ** 20).toFixed(1), rss_mib: +(fullRss / 2 ** 20).toFixed(1), rss_delta_mib: +((fullRss - baseRss) / 2 ** 20).toFixed(1) };

    // EDS churn under load.
    const ls = await (await fetch(`http://${full.admin}/listeners?format=json`)).json();
    const lport = ls.listener_statuses.find((l) => l.name === 'web').local_address.socket_address.port_value;
    const agent = new Agent({ connections: 16, keepAliveTimeout: 60_000 });
    const url = `http://127.0.0.1:${lport}/`;
    // Built before the load starts: encoding thousands of resources would stall the client.
    const next = snapshot(res, { clusters, endpoints, gen: 1, realPorts, version: 3 });
    let end = Infinity;
    let ok = 0;
    let failed = 0;
    const worker = async () => {
      while (performance.now() < end) {
        try {
          const r = await request(url, { dispatcher: agent });
          await r.body.text();
          if (r.statusCode === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    const tStart = performance.now();
    const loadDone = Promise.all(Array.from({ length: 16 }, worker));
    await sleep((seconds * 1000) / 3);
    const acked = ackOf(server, ENDPOINT_TYPE, '3');
    const servedBefore = ups.map((u) => u.served);
    const t0 = performance.now();
    server.update(next);
    let tAck = NaN;
    try {
      tAck = await Promise.race([acked, sleep(60_000).then(() => NaN)]);
    } finally {
      // The load goes on for the rest of the run, at least a third of it after the update is in.
      end = Math.max(tStart + seconds * 1000, performance.now() + (seconds * 1000) / 3);
      await loadDone;
    }
    await agent.close();
    const per = Math.max(1, Math.round(endpoints / clusters));
    // Ports only generation 1 uses for svc-0: they must have served after the push.
    const newPorts = new Set(endpointsOf(0, per, 1, realPorts).map((e) => e.endpoint.address.socket_address.port_value));
    for (const e of endpointsOf(0, per, 0, realPorts)) newPorts.delete(e.endpoint.address.socket_address.port_value);
    const newServed = ups.reduce((sum, u, i) => sum + (newPorts.has(u.port) ? u.served - servedBefore[i] : 0), 0);
    full.proc.kill('SIGKILL');

    // The same mesh for a sidecar that subscribes on demand: it holds what its one route names.
    let ondemand = null;
    if (onDemand) {
      const od = await startStrait(port, engine, dir, true);
      procs.push(od.proc);
      let held = 0;
      for (let i = 0; i < 1000 && held === 0; i++) {
        const j = await (await fetch(`http://${od.admin}/clusters?format=json`)).json();
        held = j.cluster_statuses.filter((c) => c.added_via_api).length;
        if (!held) await sleep(20);
      }
      await sleep(300);
      ondemand = { clusters_held: held, rss_mib: +(rssOf(od.proc.pid) / 2 ** 20).toFixed(1) };
    }
    const churn = { clusters, endpoints_replaced: Math.floor(per / 2) * clusters, seconds: +((performance.now() - tStart) / 1000).toFixed(1), requests_ok: ok, requests_failed: failed, apply_ms: Math.round(tAck - t0), new_endpoints_served: newServed };
    return { engine, apply, churn, ondemand };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await server.close();
    for (const u of ups) u.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function xdsScaleMarkdown(r) {
  const a = r.apply;
  const c = r.churn;
  let md = '| engine | clusters | endpoints | push → applied (last ACK) | RSS before | RSS after | RSS delta |\n|---|---|---|---|---|---|---|\n';
  md += `| strait-${r.engine} | ${a.clusters} | ${a.endpoints} | ${Number.isNaN(a.apply_ms) ? 'no ACK within 120 s' : `${a.apply_ms} ms`} | ${a.rss_before_mib} MiB | ${a.rss_mib} MiB | ${a.rss_delta_mib} MiB |\n\n`;
  md += '| engine | EDS churn: endpoints replaced | seconds | requests ok | failed | apply (push to ACK) | requests to new endpoints |\n|---|---|---|---|---|---|---|\n';
  md += `| strait-${r.engine} | ${c.endpoints_replaced} across ${c.clusters} clusters | ${c.seconds} | ${c.requests_ok} | ${c.requests_failed} | ${Number.isNaN(c.apply_ms) ? 'no ACK within 60 s' : `${c.apply_ms} ms`} | ${c.new_endpoints_served} |\n`;
  if (r.ondemand) {
    md += '\n| engine | same mesh, on-demand clusters | clusters held | RSS once configured | wildcard sidecar RSS |\n|---|---|---|---|---|\n';
    md += `| strait-${r.engine} | ${a.clusters} served, 1 routed to | ${r.ondemand.clusters_held} | ${r.ondemand.rss_mib} MiB | ${a.rss_mib} MiB |\n`;
  }
  return md;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, d) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : d;
  };
  const r = await runXdsScale({ clusters: Number(opt('clusters', '1000')), endpoints: Number(opt('endpoints', '10000')), seconds: Number(opt('seconds', '3')), engine: opt('engine', 'native'), onDemand: args.includes('--on-demand') });
  process.stdout.write(args.includes('--json') ? JSON.stringify(r) + '\n' : xdsScaleMarkdown(r));
  process.exit(0);
}
