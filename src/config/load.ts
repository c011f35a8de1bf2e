import { Worker } from 'node:worker_threads';
import { ConfigError, type FieldError } from '../errors.js';
import type { LoadOptions } from './bootstrap.js';
import type { Bootstrap } from './types.js';

export interface DecodedBootstrap {
  readonly bootstrap: Bootstrap;
  /** The same with sensitive fields replaced, for /config_dump. */
  readonly redacted: Bootstrap;
  readonly warnings: readonly FieldError[];
  readonly errors: readonly FieldError[];
}

/**
 * Decodes a Bootstrap in a worker thread. The Envoy API's reflection objects take ~40 MB of
 * heap that V8 does not hand back once grown; decoding in a short-lived isolate returns it to
 * the OS when the worker ends, so a static sidecar idles at Node's own footprint.
 */
export function decodeBootstrapOffThread(input: { file: string } | { text: string; source: string }, opts: LoadOptions = {}): Promise<DecodedBootstrap> {
  const source = 'file' in input ? input.file : input.source;
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load_worker.js', import.meta.url), { workerData: { ...input, source, opts } });
    worker.once('message', (m: { ok: boolean; errors: FieldError[] } & Partial<DecodedBootstrap>) => {
      void worker.terminate();
      if (m.ok) resolve(m as DecodedBootstrap);
      else reject(new ConfigError(m.errors, source));
    });
    worker.once('error', reject);
  });
}
