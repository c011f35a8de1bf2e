// A Strait process run with the module loader hook of test/fixtures/module_log, which logs every
// module it loads: the idle-memory tests read that list once the proxy is LIVE.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, ENGINES, REPO, StraitProcess, tmpDir } from './strait.js';

const REGISTER = path.join(REPO, 'test/fixtures/module_log/register.mjs');

export interface LoggedRun {
  strait: StraitProcess;
  /** Modules loaded so far, as paths relative to the repository ('dist/...', 'node_modules/...'). */
  modules(): string[];
}

/** Starts Strait on `config` ("{{TMP}}" stands for its own temporary directory); the caller stops it. */
export async function startModuleLogged(config: string): Promise<LoggedRun> {
  const dir = tmpDir();
  const cfg = path.join(dir, 'strait.yaml');
  fs.writeFileSync(cfg, config.replaceAll('{{TMP}}', dir));
  const log = path.join(dir, 'modules.log');
  const adminPath = path.join(dir, 'admin.address');
  const args = ['--import', REGISTER, CLI, '--config', cfg, '--admin-address-path', adminPath, '--io-engine', ENGINES[0]!, '--log-level', 'warn', '--base-id', String(process.pid % 50_000)];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STRAIT_TEST_MODULE_LOG: log } });
  const strait = new StraitProcess(proc, dir, adminPath);
  try {
    await strait.waitReady();
  } catch (err) {
    await strait.stop();
    throw err;
  }
  const modules = () =>
    fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((u) => u.replace(/^file:\/\//, '').replace(`${REPO}/`, ''));
  return { strait, modules };
}
