#!/usr/bin/env node
// Thin launcher so `npx strait` and `node bin/strait.js` run the compiled CLI.
import { createRequire } from 'node:module';
import v8 from 'node:v8';

const cmdline = [...process.execArgv, process.env.NODE_OPTIONS ?? ''];

// V8's helper threads run on the proxy's CPUs. Pinned to one core (as in bench/), each compile or
// GC task that wakes there takes the core from the event loop for a scheduler tick (4 ms here),
// and node's four workers queued behind one another for up to ~17 ms: the keep-alive row's p99 of
// 8-11 ms in about one round in four (perf-reports/2026-12-08-helper-threads.md). One worker
// (compiles still leave the loop) and GC on the main thread in V8's incremental steps bound that
// to one tick. Only the command line sets either, so the launcher starts node again with them
// (execv: same pid, environment and stdio) unless the operator chose thread or GC options, or set
// STRAIT_REEXEC=0; without the addon it runs on as started. Node marks every inherited fd
// close-on-exec at start-up and the addon gives back only 0-2, so a process handed other fds
// (an IPC channel, systemd's LISTEN_FDS) is not started again.
const helperThreads = !cmdline.some((a) => /--v8-pool-size|single-threaded|--(no-)?(concurrent|parallel)-(marking|sweeping|scavenge)/.test(a));
const handedFds = process.env.NODE_CHANNEL_FD !== undefined || process.env.LISTEN_FDS !== undefined;
if (helperThreads && !handedFds && process.env.STRAIT_REEXEC !== '0') {
  let addon = null;
  try {
    addon = createRequire(import.meta.url)('../build/Release/strait_native.node');
  } catch {
    // No addon (node engine without a build): V8's defaults.
  }
  if (typeof addon?.execv === 'function') {
    try {
      addon.execv(process.execPath, [process.argv0, '--v8-pool-size=1', '--single-threaded-gc', ...process.execArgv, ...process.argv.slice(1)]);
    } catch (err) {
      process.stderr.write(`strait: running with V8's default threads: ${err?.message ?? err}\n`);
    }
  }
}

// Start-up allocates mostly long-lived objects (modules, the config), and V8 answers that by
// growing the young generation, whose pages then stay resident at idle (~4 MB). Hold it at its
// initial size until the proxy is up, then give V8 its default growth back for traffic. Left
// alone when the operator sets the young generation's size on the command line.
const semiSpace = !cmdline.some((a) => a.includes('semi-space'));
if (semiSpace) v8.setFlagsFromString('--semi-space-growth-factor=1');

// Start-up code runs once: loading ~100 modules makes node's own ESM resolver (URL and path
// helpers) "hot", and optimizing it brought ~5 MB into an idle proxy (TurboFan's own code pages,
// its compile threads' malloc arenas, baseline code) for functions that never run again. Both
// JIT tiers are off until the proxy is LIVE and on again from then on, so the data path is
// compiled as before: a function tiers up from its calls under traffic, whether or not it also
// ran during start-up. Left alone when the operator chooses compiler flags.
const jit = !cmdline.some((a) => /--(no-)?(opt|turbofan|sparkplug|maglev|jitless)\b/.test(a));
if (jit) v8.setFlagsFromString('--no-opt --no-sparkplug');

// TurboFan's inlining budget. The data path is a few deep call chains (an addon batch's handler,
// the exchange, its try, the addon call), and V8's default budget (920 bytes of bytecode inlined
// into one compiled function) ran out inside them: small accessors and lookups at the far end
// stayed calls. With 3000 the L7 rows ran 2-5 % fewer instructions a request, with fewer
// simulated instruction-cache misses, not more, for ~3 MB more code under load. Functions of up
// to 32 bytes of bytecode (V8: 27) are inlined whatever the budget: a flag accessor that sets a
// bit is 29 (perf-reports/2026-12-07-inlining-budget.md). Each is left alone when the operator
// sets it.
if (!cmdline.some((a) => a.includes('max-inlined-bytecode-size-cumulative'))) v8.setFlagsFromString('--max-inlined-bytecode-size-cumulative=3000');
if (!cmdline.some((a) => a.includes('max-inlined-bytecode-size-small'))) v8.setFlagsFromString('--max-inlined-bytecode-size-small=32');

import('../dist/cli.js')
  .then((m) => m.main(process.argv.slice(2)))
  .then(() => {
    if (semiSpace) v8.setFlagsFromString('--semi-space-growth-factor=2'); // V8's default
    if (jit) v8.setFlagsFromString('--opt --sparkplug'); // V8's defaults
  })
  .catch((err) => {
    process.stderr.write(`strait: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
