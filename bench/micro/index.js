// Micro benchmarks (tinybench). Registry: every other .js file in this directory is one
// benchmark, default-exporting
//   { name, description, async load({ straitDir }) -> { skip: reason } | { tasks: [{ name, fn, opsPerCall }] } }
// `fn` should loop opsPerCall times so one call is long enough for the timer; results are per op.
// Modules under test are imported from the built dist/ dynamically: a benchmark whose module is
// not built reports `skipped: module not built`, and the rest still run.
//
// Run standalone: node bench/micro/index.js [--time MS] [--json] [name...]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';

const DIR = path.dirname(fileURLToPath(import.meta.url));

export function listMicro() {
  return fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.js') && f !== 'index.js')
    .sort()
    .map((f) => path.join(DIR, f));
}

/** Imports a built module from dist/, or returns null when it is not built. */
export async function importDist(straitDir, rel) {
  const file = path.join(straitDir, 'dist', rel);
  if (!fs.existsSync(file)) return null;
  return import(pathToFileURL(file).href);
}

export async function runMicro({ straitDir, timeMs = 500, only = null }) {
  const out = [];
  for (const file of listMicro()) {
    const mod = (await import(pathToFileURL(file).href)).default;
    if (only && !only.includes(mod.name)) continue;
    const entry = { name: mod.name, file: path.relative(path.join(DIR, '../..'), file), description: mod.description, status: 'ran', reason: null, tasks: [] };
    let loaded;
    try {
      loaded = await mod.load({ straitDir, importDist: (rel) => importDist(straitDir, rel) });
    } catch (err) {
      loaded = { skip: `failed to load: ${err.message}` };
    }
    if (loaded.skip) {
      entry.status = 'skipped';
      entry.reason = loaded.skip;
      out.push(entry);
      continue;
    }
    const bench = new Bench({ time: timeMs, warmupTime: Math.min(200, timeMs) });
    for (const t of loaded.tasks) bench.add(t.name, t.fn);
    await bench.run();
    for (const t of loaded.tasks) {
      const task = bench.getTask(t.name);
      const r = task?.result;
      const ops = t.opsPerCall ?? 1;
      if (!r || !r.latency) {
        entry.tasks.push({ name: t.name, error: r?.error?.message ?? r?.state ?? 'no result' });
        continue;
      }
      const nsPerOp = (r.latency.p50 * 1e6) / ops;
      entry.tasks.push({
        name: t.name,
        ops_per_call: ops,
        ns_per_op: nsPerOp,
        mops: 1e3 / nsPerOp,
        rme: r.latency.rme,
        samples: r.latency.samplesCount ?? null,
      });
    }
    out.push(entry);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  let timeMs = 500;
  let json = false;
  const only = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--time') timeMs = Number(args[++i]);
    else if (args[i] === '--json') json = true;
    else only.push(args[i]);
  }
  const straitDir = path.resolve(process.env.BENCH_STRAIT_DIR || path.join(DIR, '../..'));
  const res = await runMicro({ straitDir, timeMs, only: only.length ? only : null });
  if (json) process.stdout.write(`BENCH_MICRO ${JSON.stringify(res)}\n`);
  else {
    for (const e of res) {
      if (e.status !== 'ran') console.log(`${e.name}: ${e.status}: ${e.reason}`);
      else for (const t of e.tasks) console.log(`${e.name}: ${t.name}: ${t.error ?? `${t.ns_per_op.toFixed(2)} ns/op (±${t.rme?.toFixed(2)} %)`}`);
    }
  }
}
