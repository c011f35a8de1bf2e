import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from '../errors.js';
import { loadBootstrapFile, parseBootstrapText, type LoadOptions } from './bootstrap.js';
import { redact } from './redact.js';

/** Runs in a worker thread: see load.ts for why. */
const { file, text, source, opts } = workerData as { file?: string; text?: string; source: string; opts: LoadOptions };
try {
  const r = file !== undefined ? loadBootstrapFile(file, opts) : parseBootstrapText(text ?? '', source, opts);
  const redacted = redact('envoy.config.bootstrap.v3.Bootstrap', r.bootstrap);
  parentPort!.postMessage({ ok: true, bootstrap: r.bootstrap, redacted, warnings: r.warnings, errors: r.errors });
} catch (err) {
  if (err instanceof ConfigError) parentPort!.postMessage({ ok: false, errors: err.errors });
  else parentPort!.postMessage({ ok: false, errors: [{ path: '', message: String((err as Error)?.stack ?? err) }] });
}
