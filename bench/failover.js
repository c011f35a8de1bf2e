// Failover under load: an HTTP client keeps requesting through Strait (http_connection_manager,
// retries on 5xx/connect-failure/reset, outlier detection and TCP health checks) over three
// upstreams while one of them is killed and later brought back. Reports the requests that failed
// (all, and after the first detection window), and how soon the revived upstream gets traffic.
//
//   node bench/failover.js [--engines native,node] [--seconds S] [--json]
// Also run by bench/run.js, which puts the table in the report.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const REPO = path.resolve(process.env.BENCH_STRAIT_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));

export const FAILOVER_HOW =
  'Three node:http upstreams behind Strait (http_connection_manager; retry_on 5xx,connect-failure,reset with 2 retries; outlier_detection consecutive_5xx 3 / gateway failures 3, ' +
  'interval 0.2 s; TCP health checks every 0.5 s). An undici client with 16 keep-alive connections sends requests back to back. A third of the way in one upstream is killed ' +
  '(listener closed, its connections destroyed); two thirds in it listens again on the same port. "failed" counts requests without a 200; "after detection" counts those more than 1 s after the kill.';

function upstream(port = 0) {
  const sockets = new Set();
  let served = 0;
  const server = http.createServer((_req, res) => {
    served++;
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        get served() {
          return served;
        },
        kill() {
          server.close();
          for (const s of sockets) s.destroy();
        },
      }),
    ),
  );
}

function config(ports) {
  const eps = ports.map((p) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }`).join('\n');
  return `admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: trio, retry_policy: { retry_on: "5xx,connect-failure,reset", num_retries: 2 } }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
  clusters:
  - name: trio
    type: STATIC
    connect_timeout: 0.25s
    circuit_breakers: { thresholds: [ { max_retries: 1000 } ] }
    outlier_detection: { consecutive_5xx: 3, consecutive_gateway_failure: 3, interval: 0.2s, base_ejection_time: 2s, max_ejection_percent: 100 }
    health_checks: [ { timeout: 0.25s, interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]
    load_assignment:
      cluster_name: trio
      endpoints:
      - lb_endpoints:
${eps}
`;
}

export async function runFailover({ engines = ['native'], seconds = 6 } = {}) {
  const rows = [];
  for (const engine of engines) {
    const ups = [await upstream(), await upstream(), await upstream()];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-bench-fo-'));
    fs.writeFileSync(path.join(dir, 'strait.yaml'), config(ups.map((u) => u.port)));
    const adminFile = path.join(dir, 'admin');
    const proc = spawn(process.execPath, [path.join(REPO, 'bin/strait.js'), '--config', path.join(dir, 'strait.yaml'), '--io-engine', engine, '--log-level', 'error', '--admin-address-path', adminFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      let admin = '';
      for (let i = 0; i < 400 && !admin; i++) {
        if (fs.existsSync(adminFile)) admin = fs.readFileSync(adminFile, 'utf8').trim();
        if (!admin) await sleep(25);
      }
      if (!admin) throw new Error('strait did not start');
      for (let i = 0; i < 400 && (await fetch(`http://${admin}/ready`).then((r) => r.status, () => 0)) !== 200; i++) await sleep(25);
      const ls = await (await fetch(`http://${admin}/listeners?format=json`)).json();
      const port = ls.listener_statuses[0].local_address.socket_address.port_value;
      const agent = new Agent({ connections: 16, keepAliveTimeout: 60_000 });
      const url = `http://127.0.0.1:${port}/`;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      let ok = 0;
      let failed = 0;
      let failedAfterDetection = 0;
      let killedAt = Infinity;
      let revivedAt = Infinity;
      let backAfterMs = null;
      const victim = ups[1];
      let revived = null;
      const worker = async () => {
        while (performance.now() < end) {
          let good = false;
          try {
            const r = await request(url, { dispatcher: agent });
            await r.body.text();
            good = r.statusCode === 200;
          } catch {
            good = false;
          }
          if (good) ok++;
          else {
            failed++;
            if (performance.now() > killedAt + 1000) failedAfterDetection++;
          }
          if (revived && backAfterMs === null && revived.served > 0) backAfterMs = Math.round(performance.now() - revivedAt);
        }
      };
      const load = Promise.all(Array.from({ length: 16 }, worker));
      await sleep((seconds * 1000) / 3);
      killedAt = performance.now();
      victim.kill();
      await sleep((seconds * 1000) / 3);
      revivedAt = performance.now();
      revived = await upstream(victim.port);
      await load;
      await agent.close();
      rows.push({ engine, seconds, requests_ok: ok, requests_failed: failed, failed_after_detection: failedAfterDetection, revived_host_back_after_ms: backAfterMs });
      revived.kill();
    } finally {
      proc.kill('SIGKILL');
      for (const u of ups) u.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

export function failoverMarkdown(rows) {
  let md = '| engine | seconds | requests ok | failed | failed > 1 s after the kill | revived upstream gets traffic after |\n|---|---|---|---|---|---|\n';
  for (const r of rows) md += `| strait-${r.engine} | ${r.seconds} | ${r.requests_ok} | ${r.requests_failed} | ${r.failed_after_detection} | ${r.revived_host_back_after_ms === null ? 'not within the run' : `${r.revived_host_back_after_ms} ms`} |\n`;
  return md;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, d) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : d;
  };
  const rows = await runFailover({ engines: opt('engines', 'native').split(','), seconds: Number(opt('seconds', '6')) });
  process.stdout.write(args.includes('--json') ? JSON.stringify(rows) + '\n' : failoverMarkdown(rows));
  process.exit(0);
}
