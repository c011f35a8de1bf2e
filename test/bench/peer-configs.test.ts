// The configs the bench generates for its L7 HTTP rows, checked by each proxy's own config checker
// (strait --mode validate, haproxy -c, nginx -t) and for the settings that make the peers
// equivalent. Nothing is started on a port and nothing is timed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { ENVOY_CONFIGS } from '../../bench/peers/envoy-config.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import haproxy from '../../bench/peers/haproxy.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import nginx from '../../bench/peers/nginx.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { straitPeer } from '../../bench/peers/strait.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { findTool } from '../../bench/lib/tools.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { WORKLOADS } from '../../bench/workloads/index.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { bodyFor } from '../../bench/upstreams/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-bench-cfg-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// Ports are never bound here: the checkers only parse.
const C = { dir, listenPort: 40001, adminPort: 40002, upstreamPort: 40003, fdLimit: 4096, connections: 64 };
const LAYERS = ['http1', 'h2c'] as const;
/** Every L7 layer whose configs the checkers below parse: the HTTP ones plus gRPC (HTTP/2 upstream). */
const L7_LAYERS = [...LAYERS, 'grpc', 'h2c-local'] as const;
const has = (t: string) => findTool(t).ok as boolean;
const straitBuilt = fs.existsSync(path.join(REPO, 'dist/cli.js'));

function check(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  expect(r.status, `${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
}

type W = { name: string; layer: string; layerLabel: string; quick: boolean; upstream: { kind: string; endpoint: string; proxyEndpoint?: string } };

describe('bench L7 HTTP peer configs', () => {
  it('every HTTP workload has an L7 row, and quick measures HTTP at L7 only', () => {
    const http = (WORKLOADS as W[]).filter((w) => /^(http1|h2c)-/.test(w.name));
    for (const w of http.filter((x) => !x.name.endsWith('-l4') && !x.name.endsWith('-local'))) {
      expect(w.layerLabel, w.name).toBe('L7 (http_connection_manager)');
      expect(LAYERS as readonly string[]).toContain(w.layer);
    }
    for (const w of http.filter((x) => x.name.endsWith('-l4'))) {
      expect(w.layerLabel).toBe('L4 (tcp_proxy)');
      expect(w.quick).toBe(false);
    }
    // At L7 the proxies forward h2c streams as HTTP/1.1; direct stays h2c.
    const h2c = (WORKLOADS as W[]).find((w) => w.name === 'h2c-64')!;
    expect(h2c.upstream).toMatchObject({ endpoint: 'h2c', proxyEndpoint: 'h1' });
  });

  it('h2c-64-local: every proxy answers each bench path itself with the upstream\'s body, never forwarding', () => {
    const w = (WORKLOADS as W[]).find((x) => x.name === 'h2c-64-local')!;
    expect([w.layer, w.quick]).toEqual(['h2c-local', false]);
    const body64 = bodyFor(64);
    const envoy = ENVOY_CONFIGS['h2c-local'](C);
    expect(straitPeer('native').configs['h2c-local'](C).files['envoy.yaml']).toBe(envoy);
    expect(envoy).toContain(`match: { path: "/64" }\n                direct_response: { status: 200, body: { inline_string: "${body64}" } }`);
    expect(envoy).not.toContain('route: { cluster: upstream }');
    expect(haproxy.configs['h2c-local'](C).files['haproxy.cfg']).toContain(`http-request return status 200 content-type text/plain string "${body64}" if { path /64 }`);
    expect(nginx.configs['h2c-local'](C).files['nginx.conf']).toMatch(new RegExp(`location = /64 \\{\\s+default_type text/plain;\\s+return 200 "${body64}";`));
  });

  it('Strait and Envoy get the very same bootstrap: http_connection_manager, codec AUTO, all to one cluster', () => {
    for (const layer of L7_LAYERS) {
      const strait = straitPeer('native').configs[layer](C).files['envoy.yaml'];
      expect(strait).toBe(ENVOY_CONFIGS[layer](C));
      expect(strait).toContain('envoy.filters.network.http_connection_manager');
      expect(strait).toContain('codec_type: AUTO');
      if (layer !== 'h2c-local') expect(strait).toContain('route: { cluster: upstream }');
    }
  });

  it('HAProxy: mode http, server connections reused, h2 on the cleartext bind for h2c', () => {
    const h1 = haproxy.configs.http1(C).files['haproxy.cfg'];
    const h2 = haproxy.configs.h2c(C).files['haproxy.cfg'];
    for (const t of [h1, h2]) {
      expect(t).toMatch(/^\s*mode http$/m);
      expect(t).toMatch(/^\s*http-reuse always$/m);
      expect(t).toMatch(/^\s*nbthread 1$/m);
    }
    expect(h1).not.toContain('proto h2');
    expect(h2).toMatch(/bind 127\.0\.0\.1:40001 proto h2$/m);
  });

  it('nginx: proxy_http_version 1.1 with upstream keepalive, http2 on the listen for h2c', () => {
    const h1 = nginx.configs.http1(C).files['nginx.conf'];
    const h2 = nginx.configs.h2c(C).files['nginx.conf'];
    for (const t of [h1, h2]) {
      expect(t).toContain('proxy_http_version 1.1;');
      expect(t).toContain('proxy_set_header Connection "";');
      expect(t).toMatch(/^\s*keepalive 64;$/m);
      expect(t).toContain('worker_processes 1;');
    }
    expect(h1).not.toMatch(/listen [^;]*http2/);
    expect(h2).toMatch(/listen 127\.0\.0\.1:40001 http2/);
  });

  it('gRPC unary: HTTP/2 on both sides of every proxy, direct h2c to the gRPC server', () => {
    const w = (WORKLOADS as W[]).find((x) => x.name === 'grpc-unary-64')!;
    expect(w).toBeDefined();
    expect(w.layer).toBe('grpc');
    expect(w.quick).toBe(false);
    expect(w.upstream).toMatchObject({ kind: 'grpc-js', endpoint: 'grpc' });
    expect(w.upstream.proxyEndpoint).toBeUndefined();
    const yaml = ENVOY_CONFIGS.grpc(C);
    expect(yaml).toContain('envoy.extensions.upstreams.http.v3.HttpProtocolOptions:');
    expect(yaml).toContain('explicit_http_config: { http2_protocol_options: {} }');
    // The HTTP/1.1 layers keep Envoy's default (HTTP/1.1) upstream.
    for (const layer of LAYERS) expect(ENVOY_CONFIGS[layer](C)).not.toContain('http2_protocol_options');
    const hap = haproxy.configs.grpc(C).files['haproxy.cfg'];
    expect(hap).toMatch(/^\s*mode http$/m);
    expect(hap).toMatch(/bind 127\.0\.0\.1:40001 proto h2$/m);
    expect(hap).toMatch(/server s1 127\.0\.0\.1:40003 proto h2$/m);
    const ngx = nginx.configs.grpc(C).files['nginx.conf'];
    expect(ngx).toMatch(/listen 127\.0\.0\.1:40001 http2/);
    expect(ngx).toContain('grpc_pass grpc://up;');
    expect(ngx).not.toContain('proxy_pass');
    expect(ngx).toMatch(/^\s*keepalive 64;$/m);
  });

  it.skipIf(!straitBuilt)('strait --mode validate accepts the shared bootstrap', () => {
    for (const layer of L7_LAYERS) {
      const f = path.join(dir, `envoy-${layer}.yaml`);
      fs.writeFileSync(f, ENVOY_CONFIGS[layer](C));
      check(process.execPath, [path.join(REPO, 'bin/strait.js'), '--config', f, '--mode', 'validate']);
    }
  });

  it.skipIf(!has('haproxy'))('haproxy -c accepts the HTTP and gRPC configs', () => {
    for (const layer of L7_LAYERS) {
      const f = path.join(dir, `haproxy-${layer}.cfg`);
      fs.writeFileSync(f, haproxy.configs[layer](C).files['haproxy.cfg']);
      check(findTool('haproxy').path, ['-c', '-q', '-f', f]);
    }
  });

  it.skipIf(!has('nginx'))('nginx -t accepts the HTTP and gRPC configs', () => {
    for (const layer of L7_LAYERS) {
      const f = path.join(dir, `nginx-${layer}.conf`);
      fs.writeFileSync(f, nginx.configs[layer](C).files['nginx.conf']);
      check(findTool('nginx').path, ['-t', '-q', '-p', dir, '-c', f, '-e', path.join(dir, 'error.log')]);
    }
  });
});
