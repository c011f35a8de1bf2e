// What the report says about the machine and the code under test.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { haveTaskset } from './proc.js';
import { findTool, versionOf } from './tools.js';

function git(dir, args) {
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function loadavg() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

export function machineInfo(repoDir) {
  let osName = `${os.type()} ${os.release()}`;
  try {
    const m = fs.readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?/m);
    if (m) osName = m[1];
  } catch {
    // keep the uname form
  }
  const now = new Date();
  const tool = (name, args) => (findTool(name).ok ? versionOf(name, args) : null);
  return {
    date: now.toISOString().slice(0, 10),
    startedAt: now.toISOString(),
    commit: git(repoDir, ['rev-parse', '--short', 'HEAD']) ?? 'nocommit',
    dirty: Boolean(git(repoDir, ['status', '--porcelain'])),
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    os: osName,
    memTotalGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    taskset: haveTaskset(),
    loadavgStart: loadavg(),
    tools: {
      wrk: tool('wrk', ['-v']),
      h2load: tool('h2load', ['--version']),
    },
  };
}
