import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { log, setLogLevel } from '../../log.js';
import { runXdsServer } from './index.js';

export const XDS_SERVER_USAGE = `usage: strait xds-server --dir DIR [--port P] [options]

  Serves the Envoy resources in DIR over ADS (state of the world and delta) and pushes a new
  version when DIR changes. Files (YAML or JSON, recursively): one resource with "@type", an
  Envoy filesystem-xDS file ("resources:" list), an admin config_dump, a bootstrap (its
  static_resources are served), or Istio ServiceEntry/DestinationRule/VirtualService objects
  (translated to the outbound clusters, routes and listeners an Istio sidecar gets). Clusters
  and endpoints are pushed first; listeners and routes once the client has ACKed them.

      --dir DIR                the directory to serve (required)
      --port P                 gRPC port (default 18000; 0 = any free port)
      --host H                 address to bind (default 127.0.0.1)
      --address-path F         write the bound host:port to F
      --debounce-ms N          quiet time after a change before re-reading (default 100)
      --debounce-max-ms N      longest a burst of changes can delay a push (default 1000)
      --outbound-bind H        bind address of the outbound listeners translated from Istio
                               objects, named H_<port> (default 0.0.0.0)
      --confirm-ms N           how long a push waits for the client to ACK clusters before
                               routes (and routes before cluster removals) (default 5000)
      --grpc-listeners         also serve the <host>:<port> api_listeners proxyless gRPC
                               clients (xds:///host:port) ask for
      --listener-address H:P   serve every listener on this socket address instead (e.g.
                               127.0.0.1:0 to run production listeners locally)
  -l, --log-level LEVEL        trace|debug|info|warn|error (default info)
`;

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** `strait xds-server ...`: runs until SIGTERM/SIGINT. */
export async function xdsServerMain(argv: string[], fail: (message: string) => never): Promise<void> {
  let o;
  try {
    o = parseArgs({
      args: argv,
      options: {
        dir: { type: 'string' },
        port: { type: 'string', default: '18000' },
        host: { type: 'string', default: '127.0.0.1' },
        'address-path': { type: 'string' },
        'debounce-ms': { type: 'string', default: '100' },
        'debounce-max-ms': { type: 'string', default: '1000' },
        'outbound-bind': { type: 'string', default: '0.0.0.0' },
        'grpc-listeners': { type: 'boolean', default: false },
        'confirm-ms': { type: 'string', default: '5000' },
        'listener-address': { type: 'string' },
        'log-level': { type: 'string', short: 'l', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n\n${XDS_SERVER_USAGE}`);
  }
  if (o.help) {
    process.stdout.write(XDS_SERVER_USAGE);
    return;
  }
  const level = o['log-level'] === 'warning' ? 'warn' : o['log-level']!;
  if (!LEVELS.has(level)) fail(`--log-level must be one of ${[...LEVELS].join(', ')}`);
  setLogLevel(level);
  if (!o.dir) fail(`--dir is required\n\n${XDS_SERVER_USAGE}`);
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port needs a port number, got "${o.port}"`);
  const debounceMs = Number(o['debounce-ms']);
  if (!Number.isInteger(debounceMs) || debounceMs < 0) fail(`--debounce-ms needs a non-negative integer, got "${o['debounce-ms']}"`);
  const debounceMaxMs = Number(o['debounce-max-ms']);
  if (!Number.isInteger(debounceMaxMs) || debounceMaxMs < 0) fail(`--debounce-max-ms needs a non-negative integer, got "${o['debounce-max-ms']}"`);
  const confirmMs = Number(o['confirm-ms']);
  if (!Number.isInteger(confirmMs) || confirmMs < 0) fail(`--confirm-ms needs a non-negative integer, got "${o['confirm-ms']}"`);
  if (!isIP(o['outbound-bind']!)) fail(`--outbound-bind needs an IP address, got "${o['outbound-bind']}"`);
  let listenerAddress: { host: string; port: number } | undefined;
  if (o['listener-address']) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(o['listener-address']);
    if (!m || !isIP(m[1]!) || Number(m[2]) > 65535) fail(`--listener-address needs IP:PORT, got "${o['listener-address']}"`);
    listenerAddress = { host: m[1]!, port: Number(m[2]) };
  }
  let handle;
  try {
    handle = await runXdsServer({ dir: o.dir, host: o.host!, port, debounceMs, debounceMaxMs, outboundBind: o['outbound-bind'], grpcListeners: o['grpc-listeners'], confirmMs, addressPath: o['address-path'], load: { listenerAddress } });
  } catch (err) {
    fail((err as Error).message);
  }
  const stop = () => {
    log.info('xds-server: stopping');
    void handle.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
