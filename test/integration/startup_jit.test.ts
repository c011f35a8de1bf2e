import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tagServer } from '../helpers/net.js';
import { ADMIN, CLI, ENGINES, REPO, staticCluster, StraitProcess, tcpListener, tmpDir } from '../helpers/strait.js';

/**
 * Idle memory: bin/strait.js keeps V8's optimizing compiler off while the proxy starts (start-up
 * code runs once), and must turn it back on once the proxy is LIVE, or traffic would run
 * unoptimized. A preload (test/fixtures/jit_probe) asks V8 at both times.
 */
const PROBE = path.join(REPO, 'test/fixtures/jit_probe/probe.mjs');

const running: StraitProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

describe('compilers during start-up', () => {
  it('the optimizer is off while the proxy starts and on once it is LIVE', async () => {
    const up = await tagServer('jit');
    closers.push(() => up.close());
    const dir = tmpDir();
    const cfg = path.join(dir, 'strait.yaml');
    fs.writeFileSync(cfg, `${ADMIN}static_resources:\n  listeners:\n${tcpListener('l4', 'up')}  clusters:\n${staticCluster('up', [up.port])}`);
    const out = path.join(dir, 'jit.log');
    const adminPath = path.join(dir, 'admin.address');
    const args = ['--allow-natives-syntax', '--import', PROBE, CLI, '--config', cfg, '--admin-address-path', adminPath, '--io-engine', ENGINES[0]!, '--log-level', 'warn', '--base-id', String(process.pid % 50_000)];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STRAIT_TEST_JIT_LOG: out } });
    const strait = new StraitProcess(proc, dir, adminPath);
    running.push(strait);
    await strait.waitReady();
    proc.kill('SIGUSR2');
    while (!fs.existsSync(out) || !fs.readFileSync(out, 'utf8').includes('live')) await new Promise((r) => setTimeout(r, 10));
    expect(fs.readFileSync(out, 'utf8')).toBe('start off\nlive on\n');
  });
});
