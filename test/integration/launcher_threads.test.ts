import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tagServer } from '../helpers/net.js';
import { ADMIN, CLI, ENGINES, staticCluster, StraitProcess, tcpListener, tmpDir } from '../helpers/strait.js';

/**
 * bin/strait.js starts node again (execv, same pid) with one V8 worker thread and GC on the main
 * thread, unless the operator chose thread or GC options or set STRAIT_REEXEC=0
 * (perf-reports/2026-12-08-helper-threads.md). What the kernel says about the process is the
 * evidence: its command line and its threads, and that it still logs and carries traffic.
 */
const running: StraitProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function start(nodeArgs: string[], env: NodeJS.ProcessEnv = {}): Promise<{ strait: StraitProcess; port: number }> {
  const up = await tagServer('threads');
  closers.push(() => up.close());
  const dir = tmpDir();
  const cfg = path.join(dir, 'strait.yaml');
  fs.writeFileSync(cfg, `${ADMIN}static_resources:\n  listeners:\n${tcpListener('l4', 'up')}  clusters:\n${staticCluster('up', [up.port])}`);
  const adminPath = path.join(dir, 'admin.address');
  const args = [...nodeArgs, CLI, '--config', cfg, '--admin-address-path', adminPath, '--io-engine', ENGINES[0]!, '--log-level', 'info'];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const strait = new StraitProcess(proc, dir, adminPath);
  running.push(strait);
  await strait.waitReady();
  return { strait, port: await strait.port('l4') };
}

function commandLine(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

function threads(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/task`).length;
}

/** The tag the upstream answers with, through the proxy's TCP listener. */
function tagThrough(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
    s.end('x');
  });
}

describe('the launcher starts node with one V8 worker and GC on the main thread', () => {
  it('in the same process, which logs to its stderr and carries traffic', async () => {
    const { strait, port } = await start([]);
    const cmd = commandLine(strait.pid);
    expect(cmd).toContain('--v8-pool-size=1');
    expect(cmd).toContain('--single-threaded-gc');
    expect(cmd.filter((a) => a === '--v8-pool-size=1')).toHaveLength(1);
    // stdio survives the exec (node marks it close-on-exec): the LIVE line reaches our pipe.
    expect(strait.stderr).toContain('strait is LIVE');
    expect(await tagThrough(port)).toContain('threads');

    const { strait: plain } = await start([], { STRAIT_REEXEC: '0' });
    const plainCmd = commandLine(plain.pid);
    expect(plainCmd).not.toContain('--v8-pool-size=1');
    expect(plainCmd).not.toContain('--single-threaded-gc');
    // Node's default pool is four V8 workers: three fewer threads with one.
    expect(threads(plain.pid) - threads(strait.pid)).toBeGreaterThanOrEqual(3);
  });

  it("leaves the operator's own thread or GC options alone", async () => {
    const { strait } = await start(['--v8-pool-size=2']);
    const cmd = commandLine(strait.pid);
    expect(cmd).toContain('--v8-pool-size=2');
    expect(cmd).not.toContain('--v8-pool-size=1');
    expect(cmd).not.toContain('--single-threaded-gc');
  });
});
