import v8 from 'node:v8';
import { ConfigError } from '../errors.js';
import { loadBootstrapFile, parseBootstrapText, type LoadOptions } from './bootstrap.js';
import { redact } from './redact.js';

/** The config decoder's child process (see load.ts for why): request on stdin, result on stdout. */
function decode(req: { file?: string; text?: string; source: string; opts: LoadOptions }): unknown {
  try {
    const { file, text, source, opts } = req;
    const r = file !== undefined ? loadBootstrapFile(file, opts) : parseBootstrapText(text ?? '', source, opts);
    const redacted = redact('envoy.config.bootstrap.v3.Bootstrap', r.bootstrap);
    return { ok: true, bootstrap: r.bootstrap, redacted, warnings: r.warnings, errors: r.errors };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: err.errors };
    return { ok: false, errors: [{ path: '', message: String((err as Error)?.stack ?? err) }] };
  }
}

const chunks: Buffer[] = [];
process.stdin.on('data', (c: Buffer) => chunks.push(c));
process.stdin.on('end', () => {
  const req = v8.deserialize(Buffer.concat(chunks)) as Parameters<typeof decode>[0];
  process.stdout.write(v8.serialize(decode(req)));
});
