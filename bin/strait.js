#!/usr/bin/env node
// Thin launcher so `npx strait` and `node bin/strait.js` run the compiled CLI.
import v8 from 'node:v8';

const cmdline = [...process.execArgv, process.env.NODE_OPTIONS ?? ''];

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
