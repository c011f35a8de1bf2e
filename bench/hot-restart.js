// Hot restart under load: a SOFARPC client (sofa-rpc-node) calls through Strait at a steady rate
// while N new processes take over one after another (--restart-epoch 1..N). Reports calls
// answered, calls failed, client connections the proxy saw (1 = the client never reconnected),
// and the slowest call during the run, per I/O engine.
//
//   node bench/hot-restart.js [--upgrades N] [--engines native,node] [--json]
// Also run by bench/run.js (as a child process, `--json`), which puts the table in the report.
// It measures the checkout BENCH_STRAIT_DIR points at, like the rest of the bench.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { rpcProxyBuilt, straitDir } from './peers/strait.js';

const require = createRequire(import.meta.url);
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

function config(upstreamPort) {
  return `admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          protocol: BOLT
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: users } } ] } ]
  clusters:
  - name: users
    connect_timeout: 1s
    load_assignment: { cluster_name: users, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${upstreamPort} } } } } ] } ] }
`;
}

function startStrait(dir, engine, baseId, epoch) {
  const adminFile = path.join(dir, `admin-${epoch}`);
  const proc = spawn(process.execPath, [path.join(straitDir(), 'bin/strait.js'), '--config', path.join(dir, 'strait.yaml'), '--io-engine', engine, '--log-level', 'error', '--base-id', String(baseId), '--restart-epoch', String(epoch), '--admin-address-path', adminFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  const p = { proc, adminFile, running: true };
  p.exited = new Promise((r) =>
    proc.on('exit', (code, signal) => {
      p.running = false;
      r(code ?? signal);
    }),
  );
  return p;
}

async function adminOf(p) {
  for (let i = 0; i < 400; i++) {
    // A process that failed to start never writes the file: say so now, not after the timeout.
    if (!p.running) throw new Error(`strait exited (${await p.exited}) before writing its admin address`);
    if (fs.existsSync(p.adminFile)) {
      const a = fs.readFileSync(p.adminFile, 'utf8').trim();
      if (a) return `http://${a}`;
    }
    await sleep(25);
  }
  throw new Error('strait did not write its admin address');
}

async function stat(admin, name) {
  const text = await (await fetch(`${admin}/stats`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}: `));
  return line ? Number(line.slice(name.length + 2)) : undefined;
}

/** Why the run cannot happen in this checkout, or null. */
export function hotRestartUnavailable() {
  const dir = straitDir();
  if (!fs.existsSync(path.join(dir, 'dist/cli.js'))) return 'dist/cli.js not built (npm run build)';
  if (!rpcProxyBuilt(dir)) return 'rpc_proxy not built (the load is SOFARPC over Bolt)';
  try {
    require.resolve('sofa-rpc-node');
  } catch {
    return 'sofa-rpc-node not installed (npm ci)';
  }
  return null;
}

export async function runHotRestart({ upgrades = 3, engines = ['native', 'node'], gapMs = 1000 } = {}) {
  const { RpcServer } = require('sofa-rpc-node').server;
  const { RpcClient } = require('sofa-rpc-node').client;
  const server = new RpcServer({ logger: quiet, port: 0 });
  server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, { hello: async (n) => `hello ${n}` });
  await server.start();
  const upstreamPort = server._servers[0].address().port;
  const rows = [];
  // The newest Strait process, killed on the way out if a step failed.
  let live = null;
  try {
    for (const engine of engines) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-bench-hr-'));
      fs.writeFileSync(path.join(dir, 'strait.yaml'), config(upstreamPort));
      const baseId = 200000 + Math.floor(Math.random() * 100000);
      let current = startStrait(dir, engine, baseId, 0);
      live = current;
      let admin = await adminOf(current);
      for (let i = 0; i < 400 && (await fetch(`${admin}/ready`).then((r) => r.status, () => 0)) !== 200; i++) await sleep(25);
      const listeners = JSON.parse(await (await fetch(`${admin}/listeners?format=json`)).text());
      const port = listeners.listener_statuses[0].local_address.socket_address.port_value;
      const client = new RpcClient({ logger: quiet });
      const consumer = client.createConsumer({ interfaceName: 'com.example.UserService', version: '1.0', serverHost: `127.0.0.1:${port}` });
      await consumer.ready();
      let ok = 0;
      let failed = 0;
      let slowestMs = 0;
      let running = true;
      const t0 = Date.now();
      const load = (async () => {
        let i = 0;
        while (running) {
          const started = performance.now();
          const batch = [0, 1, 2, 3].map(() => consumer.invoke('hello', [`c${i++}`], { responseTimeout: 5000 }));
          for (const r of await Promise.allSettled(batch)) {
            if (r.status === 'fulfilled') ok++;
            else failed++;
          }
          slowestMs = Math.max(slowestMs, performance.now() - started);
          await sleep(2);
        }
      })();
      for (let epoch = 1; epoch <= upgrades; epoch++) {
        await sleep(gapMs);
        const next = startStrait(dir, engine, baseId, epoch);
        live = next;
        await current.exited;
        current = next;
      }
      await sleep(gapMs);
      running = false;
      await load;
      await client.close();
      admin = await adminOf(current);
      const connections = await stat(admin, `listener.127.0.0.1_${port}.downstream_cx_total`);
      const requests = await stat(admin, 'rpc.rpc.request');
      current.proc.kill('SIGKILL');
      await current.exited;
      fs.rmSync(dir, { recursive: true, force: true });
      rows.push({ engine, upgrades, seconds: (Date.now() - t0) / 1000, calls_ok: ok, calls_failed: failed, client_connections: connections, counted_requests: requests, slowest_batch_ms: Math.round(slowestMs) });
    }
  } finally {
    if (live?.running) live.proc.kill('SIGKILL');
    await server.close();
  }
  return rows;
}

/** "How measured", for the report. */
export const HOT_RESTART_HOW =
  'bench/hot-restart.js: a sofa-rpc-node client calls `hello` through Strait (rpc_proxy, Bolt) in batches of 4 with 2 ms pauses, ' +
  'one connection to the listener, while new Strait processes take over one after another (`--restart-epoch 1..N`, the same `--base-id`), ' +
  'each started after a pause of about a second; every call must be answered (`calls failed` counts timeouts and errors). ' +
  '`client connections seen` is the listener\'s downstream_cx_total in the last process: 1 means the client\'s connection moved across every upgrade ' +
  'and it never reconnected. `rpc.rpc.request` is the last process\'s counter, which includes what earlier processes handed over: it should equal calls ok. Not a throughput figure: the client is paced and shares its process with the Bolt server.';

export function hotRestartMarkdown(rows) {
  let md = '| engine | upgrades | seconds | calls ok | calls failed | client connections seen | rpc.rpc.request after last upgrade | slowest batch of 4 calls, ms |\n|---|---|---|---|---|---|---|---|\n';
  for (const r of rows) md += `| strait-${r.engine} | ${r.upgrades} | ${r.seconds.toFixed(1)} | ${r.calls_ok} | ${r.calls_failed} | ${r.client_connections} | ${r.counted_requests} | ${r.slowest_batch_ms} |\n`;
  return md;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, d) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : d;
  };
  const why = hotRestartUnavailable();
  if (why) {
    process.stderr.write(`hot-restart: skipped: ${why}\n`);
    process.exit(1);
  }
  const rows = await runHotRestart({ upgrades: Number(opt('upgrades', '3')), engines: opt('engines', 'native,node').split(',') });
  process.stdout.write(args.includes('--json') ? JSON.stringify(rows, null, 2) + '\n' : hotRestartMarkdown(rows));
  // sofa-rpc-node leaves timers behind after close that keep the process alive ~25 s more.
  process.exit(0);
}
