import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin/strait.js');
export type Engine = 'native' | 'node';
/** Every engine by default; STRAIT_TEST_ENGINES=node narrows a local run while iterating. */
export const ENGINES: readonly Engine[] = (process.env.STRAIT_TEST_ENGINES?.split(',') as Engine[] | undefined) ?? ['native', 'node'];

export function tmpDir(prefix = 'strait-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (validate mode, bad configs). */
export function runCli(args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`strait ${args.join(' ')} did not exit in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running Strait process with its admin API found through --admin-address-path. */
export class StraitProcess {
  stderr = '';
  private exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<number | null>;

  constructor(
    readonly proc: ChildProcess,
    readonly dir: string,
    private readonly adminPath: string,
  ) {
    proc.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((r) =>
      proc.on('exit', (code) => {
        this.exitCode = code;
        r(code);
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  admin = '';

  async waitAdmin(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined) throw new Error(`strait exited with ${this.exitCode}:\n${this.stderr}`);
      if (fs.existsSync(this.adminPath)) {
        const a = fs.readFileSync(this.adminPath, 'utf8').trim();
        if (a) return (this.admin = `http://${a}`);
      }
      await sleep(25);
    }
    throw new Error(`admin address not written:\n${this.stderr}`);
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    await this.waitAdmin(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined) throw new Error(`strait exited with ${this.exitCode}:\n${this.stderr}`);
      try {
        const r = await fetch(`${this.admin}/ready`);
        if (r.status === 200) return;
      } catch {
        // admin not answering yet
      }
      await sleep(25);
    }
    throw new Error(`strait not ready:\n${this.stderr}`);
  }

  async get(p: string, init?: RequestInit): Promise<{ status: number; text: string }> {
    const r = await fetch(`${this.admin}${p}`, init);
    return { status: r.status, text: await r.text() };
  }

  async post(p: string): Promise<{ status: number; text: string }> {
    return this.get(p, { method: 'POST' });
  }

  /** Listener port by listener name, from GET /listeners?format=json. */
  async port(listener: string): Promise<number> {
    const j = JSON.parse((await this.get('/listeners?format=json')).text) as {
      listener_statuses: Array<{ name: string; local_address: { socket_address?: { port_value: number } } }>;
    };
    const l = j.listener_statuses.find((s) => s.name === listener);
    const port = l?.local_address.socket_address?.port_value;
    if (!port) throw new Error(`no listener ${listener}: ${JSON.stringify(j)}`);
    return port;
  }

  /** One stat's value from GET /stats (undefined when absent). */
  async stat(name: string): Promise<number | undefined> {
    const text = (await this.get('/stats')).text;
    const line = text.split('\n').find((l) => l.startsWith(`${name}: `));
    return line === undefined ? undefined : Number(line.slice(name.length + 2));
  }

  /** Waits until a stat satisfies `pred` (stats are updated when connections end). */
  async waitStat(name: string, pred: (v: number) => boolean, timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let v: number | undefined;
    while (Date.now() < deadline) {
      v = await this.stat(name);
      if (v !== undefined && pred(v)) return v;
      await sleep(50);
    }
    throw new Error(`stat ${name} = ${v}, condition not met`);
  }

  rssBytes(): number {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = status.match(/VmRSS:\s+(\d+) kB/);
    return Number(m![1]) * 1024;
  }

  wait(): Promise<number | null> {
    return this.exited;
  }

  async stop(): Promise<void> {
    if (this.exitCode === undefined) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts Strait on a YAML config. `{{TMP}}` in the config is replaced by a fresh temp dir. */
export async function startStrait(
  configYaml: string,
  opts: { engine?: Engine; args?: string[]; waitReady?: boolean } = {},
): Promise<StraitProcess> {
  return startStraitFile('strait.yaml', configYaml, opts);
}

/** Starts Strait on a config written to `name` (its extension picks YAML or JSON). */
export async function startStraitFile(
  name: string,
  text: string,
  opts: { engine?: Engine; args?: string[]; waitReady?: boolean } = {},
): Promise<StraitProcess> {
  const dir = tmpDir();
  const cfg = path.join(dir, name);
  fs.writeFileSync(cfg, text.replaceAll('{{TMP}}', dir));
  const adminPath = path.join(dir, 'admin.address');
  const args = [CLI, '--config', cfg, '--admin-address-path', adminPath, '--io-engine', opts.engine ?? ENGINES[0]!, '--log-level', 'warn', ...(opts.args ?? [])];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const s = new StraitProcess(proc, dir, adminPath);
  if (opts.waitReady !== false) {
    try {
      await s.waitReady();
    } catch (err) {
      // A process that never got ready would outlive the test (and keep its ports) otherwise.
      await s.stop();
      throw err;
    }
  }
  return s;
}

/** The usual admin block: loopback, port from the OS. */
export const ADMIN = `admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
`;

export function staticCluster(name: string, ports: number[], extra = ''): string {
  const eps = ports
    .map((p) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }`)
    .join('\n');
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
${extra}    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps}
`;
}

export function tcpListener(name: string, cluster: string, extra = '', address = '{ socket_address: { address: 127.0.0.1, port_value: 0 } }'): string {
  return `  - name: ${name}
    address: ${address}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: ${cluster}
${extra}`;
}

/**
 * A listener on 127.0.0.1:0 whose only filter is rpc_proxy; `body` holds the typed_config's
 * fields after stat_prefix, indented by 10 spaces.
 */
export function rpcProxyListener(name: string, body: string, statPrefix = 'rpc'): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: ${statPrefix}
${body.endsWith('\n') ? body : `${body}\n`}`;
}

/** A listener on 127.0.0.1:0 with an http_connection_manager sending every request to `cluster`. */
export function httpListener(name: string, cluster: string, statPrefix = name): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${statPrefix}
          route_config:
            virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: ${cluster} } } ] } ]
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
`;
}
