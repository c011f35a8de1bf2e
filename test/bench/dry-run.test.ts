// `bench/run.js --dry-run` prints the plan without starting anything: every workload x peer,
// each with "run" or its skip reason. No load is generated and nothing is timed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { WORKLOADS } from '../../bench/workloads/index.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { PEERS } from '../../bench/peers/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function dryRun(args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, ['bench/run.js', ...args, '--dry-run'], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** `    <workload> x <peer>   <status>` lines of the plan. */
function cells(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const x = line.match(/^ {4}(\S+) x (\S+)\s+(.*)$/);
    if (x) m.set(`${x[1]} x ${x[2]}`, x[3]!);
  }
  return m;
}

type W = { name: string; quick: boolean };
type P = { name: string };

describe('bench/run.js --dry-run', () => {
  it('--quick lists every quick workload x every peer, each run or skipped with a reason', () => {
    const out = dryRun(['--quick'], { ENVOY_BIN: '' });
    const c = cells(out);
    const quick = (WORKLOADS as W[]).filter((w) => w.quick);
    expect(quick.length).toBeGreaterThanOrEqual(5);
    for (const w of quick) {
      for (const p of PEERS as P[]) {
        const st = c.get(`${w.name} x ${p.name}`);
        expect(st, `${w.name} x ${p.name}`).toBeDefined();
        expect(st).toMatch(/^(run|skipped: .+|n\/a: .+)$/);
      }
    }
    expect(c.size).toBe(quick.length * (PEERS as P[]).length);
    // Envoy without ENVOY_BIN is reported, not dropped.
    expect(c.get(`${quick[0]!.name} x envoy`)).toBe('skipped: ENVOY_BIN not set');
    // The plan names the layer of every row: HTTP at L7 in quick, with no L4 HTTP rows.
    expect(out).toContain('http1-keepalive-64 [L7 (http_connection_manager)]');
    expect(out).toContain('h2c-64 [L7 (http_connection_manager)]');
    expect(out).not.toMatch(/^ {2}(http1|h2c)\S* \[L4/m);
    expect(out).toContain('hot-restart [L7 Bolt, rpc_proxy] 1 upgrade(s) on strait-native\n');
    expect(out).toMatch(/estimated wall time: ~\d+ s/);
  });

  it('the full plan adds the workloads quick leaves out, the L4 HTTP rows and both engines for hot restart', () => {
    const out = dryRun([]);
    const c = cells(out);
    for (const w of WORKLOADS as W[]) expect(c.has(`${w.name} x direct`), w.name).toBe(true);
    expect(out).toContain('http1-keepalive-64-l4 [L4 (tcp_proxy)]');
    // gRPC unary: full profile only, at L7 with HTTP/2 upstream, every peer listed.
    expect(out).toContain('grpc-unary-64 [L7 HTTP/2 (http_connection_manager, h2 upstream)]');
    for (const p of PEERS as P[]) expect(c.get(`grpc-unary-64 x ${p.name}`), p.name).toMatch(/^(run|skipped: .+|n\/a: .+)$/);
    expect(out).toContain('hot-restart [L7 Bolt, rpc_proxy] 3 upgrade(s) on strait-native, strait-node\n');
  });

  it('gRPC unary is not in quick, and with ENVOY_BIN every peer has a gRPC config', () => {
    expect(cells(dryRun(['--quick'])).has('grpc-unary-64 x direct')).toBe(false);
    const c = cells(dryRun(['--only', 'grpc-unary-64'], { ENVOY_BIN: process.execPath }));
    expect(c.size).toBe((PEERS as P[]).length);
    for (const [k, v] of c) expect(v, k).not.toMatch(/no grpc config generator/);
  });

  it('--only leaves hot restart out unless it is listed', () => {
    expect(dryRun(['--quick', '--only', 'bolt'])).toMatch(/hot-restart .* off: --only/);
    const out = dryRun(['--quick', '--only', 'hot-restart']);
    expect(cells(out).size).toBe(0);
    expect(out).toContain('1 upgrade(s) on strait-native');
  });

  it('lists the Bolt and Dubbo workloads at L7, with Envoy n/a for Bolt only', () => {
    // Any executable passes Envoy's detection; --dry-run never starts it.
    const c = cells(dryRun(['--quick', '--only', 'bolt,dubbo'], { ENVOY_BIN: process.execPath }));
    expect(c.get('bolt x envoy')).toBe('n/a: Envoy has no Bolt (SOFARPC) filter');
    expect(c.get('dubbo x envoy')).toBe('run');
    for (const w of ['bolt', 'dubbo']) for (const p of ['direct', 'haproxy', 'nginx']) expect(c.get(`${w} x ${p}`)).toMatch(/^(run|skipped: .+)$/);
  });

  it('a Strait checkout without the rpc_proxy filter skips only the RPC rows, saying why', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-dry-run-'));
    try {
      for (const f of ['bin/strait.js', 'dist/cli.js', 'dist/filters/network/registry.js']) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), '');
      }
      fs.writeFileSync(path.join(dir, 'package.json'), '{"version":"0.0.0"}');
      const c = cells(dryRun(['--quick'], { BENCH_STRAIT_DIR: dir }));
      expect(c.get('http1-keepalive-64 x strait-native')).not.toMatch(/rpc_proxy/);
      for (const w of ['bolt', 'dubbo']) {
        for (const e of ['native', 'node']) expect(c.get(`${w} x strait-${e}`)).toMatch(/^skipped: rpc_proxy not built/);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a Strait checkout without dist/ reports both engines as skipped, not failed', () => {
    const c = cells(dryRun(['--quick'], { BENCH_STRAIT_DIR: path.join(REPO, 'test/bench/fixtures') }));
    expect(c.get('http1-keepalive-64 x strait-native')).toMatch(/^skipped: /);
    expect(c.get('http1-keepalive-64 x strait-node')).toMatch(/^skipped: /);
  });
});
