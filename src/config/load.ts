import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { ConfigError, StraitError, type FieldError } from '../errors.js';
import type { LoadOptions } from './bootstrap.js';
import type { Bootstrap } from './types.js';

export interface DecodedBootstrap {
  readonly bootstrap: Bootstrap;
  /** The same with sensitive fields replaced, for /config_dump. */
  readonly redacted: Bootstrap;
  readonly warnings: readonly FieldError[];
  readonly errors: readonly FieldError[];
}

const DECODER = fileURLToPath(new URL('./load_worker.js', import.meta.url));

type DecoderResult = { ok: boolean; errors: FieldError[] } & Partial<DecodedBootstrap>;

function decoded(chunks: Buffer[]): DecoderResult | null {
  try {
    return chunks.length ? (v8.deserialize(Buffer.concat(chunks)) as DecoderResult) : null;
  } catch {
    return null; // a decoder that crashed mid-write: reported by the caller as no result
  }
}

/**
 * Decodes a Bootstrap in a short-lived child process. The Envoy API's reflection objects take
 * ~40 MB of heap that V8 does not hand back once grown, so they must not live in this isolate.
 * A child rather than a worker thread: a worker leaves its malloc arena, its thread's pages and
 * the worker bootstrap code resident in this process after it ends (measured: idle RSS 76 MB
 * with a worker, 70 MB with a child). The result crosses the pipe as v8.serialize, the same
 * structured clone a worker's postMessage used, so Buffers and BigInts survive as before.
 */
export function decodeBootstrapOffThread(input: { file: string } | { text: string; source: string }, opts: LoadOptions = {}): Promise<DecodedBootstrap> {
  const source = 'file' in input ? input.file : input.source;
  return new Promise((resolve, reject) => {
    // Without the proxy's execArgv: an --inspect port or a preload must not run twice.
    const child = spawn(process.execPath, [DECODER], { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    child.once('error', (err) => reject(new StraitError('STRAIT_ERR_CONFIG', `cannot start the config decoder (${process.execPath}): ${err.message}`, { cause: err })));
    child.once('close', (code, signal) => {
      const m = decoded(chunks);
      if (!m) reject(new StraitError('STRAIT_ERR_CONFIG', `${source}: the config decoder exited (${signal ?? `code ${code}`}) without a result`));
      else if (m.ok) resolve(m as DecodedBootstrap);
      else reject(new ConfigError(m.errors, source));
    });
    // A decoder that died early closes stdin: its exit is reported above, not as EPIPE here.
    child.stdin!.on('error', () => {});
    child.stdin!.end(v8.serialize({ ...input, source, opts }));
  });
}
