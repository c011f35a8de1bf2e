// Environment-level behaviour that needs a process of its own: worker-thread teardown with open
// native objects, and exceptions thrown by JS callbacks the addon calls from the loop.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

function runFixture(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const file = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
    execFile(process.execPath, [file], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('addon lifecycle', () => {
  it('a worker thread ending (terminate() or process.exit) with busy native objects tears down cleanly', async () => {
    const r = await runFixture('worker-host.mjs');
    // Open uv handles at uv_loop_close would have aborted the whole process (SIGABRT).
    expect(r.stderr).not.toMatch(/uv_loop_close|Assertion|Aborted/);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      results: { code: number; echoed: number; pipesActiveInWorker: number }[];
      mainStats1: { pipesActive: number; poolChunks: number };
    };
    expect(report.results.map((x) => x.code)).toEqual([1, 0]); // terminate() -> 1, process.exit(0) -> 0
    for (const x of report.results) {
      expect(x.pipesActiveInWorker).toBe(1);
      expect(x.echoed).toBeGreaterThan(0); // the worker's pipe carried traffic until it died
    }
    // Per-environment state: the main thread's pool and counters never saw the workers' pipes.
    expect(report.mainStats1).toMatchObject({ pipesActive: 0, poolChunks: 0 });
  });

  it('a throwing callback becomes an uncaughtException and the addon keeps working', async () => {
    const r = await runFixture('throwing-callback.mjs');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ caught: ['thrown from a connect callback'], status: -111 });
  });
});
