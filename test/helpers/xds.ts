import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, tmpDir } from './strait.js';

/** One JSON log line of a Strait process (pino). */
export type LogLine = Record<string, any> & { msg: string };

/** A running `strait xds-server`, its log parsed line by line. */
export class XdsServerProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  port = 0;
  private exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<void>;

  constructor(
    readonly proc: ChildProcess,
    readonly dir: string,
    private readonly addressPath: string,
  ) {
    let partial = '';
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        try {
          this.logs.push(JSON.parse(l) as LogLine);
        } catch {
          // not a log line (a crash trace): kept in stderr
        }
      }
    });
    this.exited = new Promise((r) =>
      proc.on('exit', (code) => {
        this.exitCode = code;
        r();
      }),
    );
  }

  async waitListening(timeoutMs = 20_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined) throw new Error(`xds-server exited with ${this.exitCode}:\n${this.stderr}`);
      if (fs.existsSync(this.addressPath)) {
        const a = fs.readFileSync(this.addressPath, 'utf8').trim();
        if (a) return (this.port = Number(a.slice(a.lastIndexOf(':') + 1)));
      }
      await sleep(25);
    }
    throw new Error(`xds-server did not start:\n${this.stderr}`);
  }

  /** Waits for a log line matching `pred` (counting from `from`, an index into logs). */
  async waitLog(pred: (l: LogLine) => boolean, from = 0, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = this.logs.slice(from).find(pred);
      if (hit) return hit;
      await sleep(25);
    }
    throw new Error(`no matching xds-server log line:\n${this.stderr.slice(-4000)}`);
  }

  async stop(): Promise<void> {
    if (this.exitCode === undefined) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Starts `strait xds-server` on `dir` (port 0 unless given), debug logs on, short debounce. */
export async function startXdsServer(dir: string, opts: { port?: number; args?: string[] } = {}): Promise<XdsServerProcess> {
  const work = tmpDir('strait-xds-');
  const addressPath = path.join(work, 'xds.address');
  const args = [CLI, 'xds-server', '--dir', dir, '--port', String(opts.port ?? 0), '--address-path', addressPath, '--debounce-ms', '50', '--log-level', 'debug', ...(opts.args ?? [])];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const s = new XdsServerProcess(proc, dir, addressPath);
  await s.waitListening();
  return s;
}

/**
 * A bootstrap that takes everything from ADS at 127.0.0.1:`port`: node identity, admin on port 0,
 * a short initial_fetch_timeout and quick reconnects so tests do not wait on defaults.
 */
export function adsBootstrap(port: number, apiType: 'GRPC' | 'DELTA_GRPC', nodeId = 'test-node', extra = ''): string {
  return `node: { id: ${nodeId}, cluster: test-cluster, metadata: { app: strait-test } }
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
dynamic_resources:
  ads_config:
    api_type: ${apiType}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc:
        cluster_name: xds-grpc
        retry_policy: { retry_back_off: { base_interval: 0.1s, max_interval: 0.5s } }
  lds_config: { ads: {}, initial_fetch_timeout: 2s, resource_api_version: V3 }
  cds_config: { ads: {}, initial_fetch_timeout: 2s, resource_api_version: V3 }
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
${extra}`;
}

/** Resource YAML snippets. */
export const res = {
  edsCluster: (name: string, service = name) => `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: { service_name: ${service}, eds_config: { ads: {}, resource_api_version: V3 } }
`,
  staticCluster: (name: string, port: number) => `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: ${name}
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`,
  assignment: (service: string, ports: number[]) => `- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: ${service}
  endpoints:
  - lb_endpoints:
${ports.map((p) => `    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }`).join('\n')}
`,
  tcpListener: (name: string, cluster: string, port = 0, statPrefix = name) => `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: ${statPrefix}
        cluster: ${cluster}
`,
};

/** Writes an Envoy filesystem-xDS file (`resources:` list); the write is atomic so the server never reads half a file. */
export function writeResources(dir: string, file: string, entries: string[]): void {
  const tmp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(tmp, `resources:\n${entries.join('')}`);
  fs.renameSync(tmp, path.join(dir, file));
}

/** Polls `probe` until it returns a value `ok` accepts. */
export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    await sleep(50);
  }
  throw new Error(`${what} not met; last value: ${JSON.stringify(last)} ${lastErr ? String(lastErr) : ''}`);
}
