// External tools the bench drives: detection with a reason when missing, versions for the
// report, and the C tools (bench/tools/*.c) compiled once per source version into a temp cache.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from './proc.js';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TOOLS_DIR = path.join(BENCH_DIR, 'tools');

/** apt package that provides each tool, for skip messages. */
const APT = { wrk: 'wrk', h2load: 'nghttp2-client', haproxy: 'haproxy', nginx: 'nginx', taskset: 'util-linux', cc: 'build-essential or clang' };

/** { ok: true, path } or { ok: false, reason } */
export function findTool(name) {
  const p = which(name);
  if (p) return { ok: true, path: p };
  return { ok: false, reason: `${name} not found on PATH (apt-get install ${APT[name] ?? name})` };
}

/** First line of a version command's combined output, or null. */
export function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return null;
  const line = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean);
  return line ?? null;
}

const compiled = new Map();
/**
 * Path of a C tool from bench/tools/<name>.c, compiled on first use into a temp cache keyed by
 * the source's hash and the shared headers' (so an edited tool is rebuilt); or { ok: false, reason }.
 */
export function cTool(name) {
  if (compiled.has(name)) return compiled.get(name);
  const result = compileTool(name);
  compiled.set(name, result);
  return result;
}

function compileTool(name) {
  const src = path.join(TOOLS_DIR, `${name}.c`);
  // The shared headers are part of every tool's build: an edit to one rebuilds them all.
  const h = crypto.createHash('sha256').update(fs.readFileSync(src));
  for (const f of fs.readdirSync(TOOLS_DIR).filter((x) => x.endsWith('.h')).sort()) h.update(fs.readFileSync(path.join(TOOLS_DIR, f)));
  const hash = h.digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), `strait-bench-tools-${hash}`);
  const bin = path.join(dir, name);
  if (fs.existsSync(bin)) return { ok: true, path: bin };
  const cc = ['cc', 'clang', 'gcc'].map(which).find(Boolean);
  if (!cc) return { ok: false, reason: `no C compiler (cc, clang or gcc) to build bench/tools/${name}.c (apt-get install ${APT.cc})` };
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  try {
    execFileSync(cc, ['-O2', '-pthread', '-o', tmp, src], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.renameSync(tmp, bin);
  } catch (err) {
    return { ok: false, reason: `compiling bench/tools/${name}.c with ${cc} failed: ${String(err.stderr ?? err.message).slice(0, 300)}` };
  }
  return { ok: true, path: bin };
}

/** The bulk sender/sink (bench/tools/bulk.c). */
export const bulkTool = () => cTool('bulk');
