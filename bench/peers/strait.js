// Strait, launched by its contract: node bin/strait.js --config FILE --io-engine E --log-level warn.
// The two I/O engines are separate peers so the report shows them side by side.
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_DIR } from '../lib/tools.js';
import { ENVOY_CONFIGS, STRAIT_CONFIGS } from './envoy-config.js';

/** The repo whose bin/strait.js is benchmarked (BENCH_STRAIT_DIR, default: this repo). */
export function straitDir() {
  return path.resolve(process.env.BENCH_STRAIT_DIR || path.join(BENCH_DIR, '..'));
}

/** Whether the checkout has the rpc_proxy filter compiled and registered. */
export function rpcProxyBuilt(dir = straitDir()) {
  const net = path.join(dir, 'dist/filters/network');
  if (!fs.existsSync(path.join(net, 'rpc_proxy/config.js'))) return false;
  try {
    return fs.readFileSync(path.join(net, 'registry.js'), 'utf8').includes('rpc_proxy');
  } catch {
    return false;
  }
}

export function straitPeer(engine) {
  const configs = {};
  for (const [layer, gen] of Object.entries({ ...ENVOY_CONFIGS, ...STRAIT_CONFIGS })) {
    configs[layer] = (c) => ({
      files: { 'envoy.yaml': gen({ listenPort: c.listenPort, adminPort: c.adminPort, upstreamPort: c.upstreamPort }) },
      cmd: process.execPath,
      args: [...(c.nodeArgs ?? []), path.join(straitDir(), 'bin/strait.js'), '--config', '{file:envoy.yaml}', '--io-engine', engine, '--log-level', 'warn'],
      ready: { http: `http://127.0.0.1:${c.adminPort}/ready` },
    });
  }
  return {
    name: `strait-${engine}`,
    kind: 'proxy',
    engine,
    describe: `Strait, --io-engine ${engine}${engine === 'native' ? ' (C++ addon data path)' : ' (plain net.Socket reference)'}`,
    /** RPC layers need the rpc_proxy filter, which may not be built in the checkout measured. */
    layerUnavailable(layer) {
      if (layer in STRAIT_CONFIGS && !rpcProxyBuilt()) return 'rpc_proxy not built (no dist/filters/network/rpc_proxy/config.js registered in dist/filters/network/registry.js)';
      return null;
    },
    detect() {
      const dir = straitDir();
      if (!fs.existsSync(path.join(dir, 'bin/strait.js'))) return { ok: false, reason: `bin/strait.js missing in ${dir}` };
      if (!fs.existsSync(path.join(dir, 'dist/cli.js'))) return { ok: false, reason: 'dist/cli.js not built (npm run build)' };
      let version = 'unknown';
      try {
        version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
      } catch {
        // keep 'unknown'
      }
      return { ok: true, version: `strait ${version} (node ${process.version})` };
    },
    configs,
  };
}
