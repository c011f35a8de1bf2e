// Envoy, only when ENVOY_BIN points at a binary. It gets the same generated bootstrap as Strait.
import fs from 'node:fs';
import { versionOf } from '../lib/tools.js';
import { ENVOY_CONFIGS } from './envoy-config.js';

const configs = {};
for (const [layer, gen] of Object.entries(ENVOY_CONFIGS)) {
  configs[layer] = (c) => ({
    files: { 'envoy.yaml': gen({ listenPort: c.listenPort, adminPort: c.adminPort, upstreamPort: c.upstreamPort }) },
    cmd: process.env.ENVOY_BIN,
    // One worker like every other peer; no hot-restart shared memory, so several can coexist.
    args: ['-c', '{file:envoy.yaml}', '--concurrency', '1', '--disable-hot-restart', '--log-level', 'warn'],
    ready: { http: `http://127.0.0.1:${c.adminPort}/ready` },
  });
}

export default {
  name: 'envoy',
  kind: 'proxy',
  describe: 'Envoy ($ENVOY_BIN), --concurrency 1, the same bootstrap as Strait',
  detect() {
    const bin = process.env.ENVOY_BIN;
    if (!bin) return { ok: false, reason: 'ENVOY_BIN not set' };
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      return { ok: false, reason: `ENVOY_BIN=${bin} is not an executable file` };
    }
    return { ok: true, version: (versionOf(bin, ['--version']) ?? 'unknown').replace(/^.*version: /, 'envoy ') };
  },
  configs,
};
