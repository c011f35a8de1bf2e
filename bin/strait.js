#!/usr/bin/env node
// Thin launcher so `npx strait` and `node bin/strait.js` run the compiled CLI.
import v8 from 'node:v8';

// Start-up allocates mostly long-lived objects (modules, the config), and V8 answers that by
// growing the young generation, whose pages then stay resident at idle (~4 MB). Hold it at its
// initial size until the proxy is up, then give V8 its default growth back for traffic. Left
// alone when the operator sets the young generation's size on the command line.
const tuned = ![...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('semi-space'));
if (tuned) v8.setFlagsFromString('--semi-space-growth-factor=1');

import('../dist/cli.js')
  .then((m) => m.main(process.argv.slice(2)))
  .then(() => {
    if (tuned) v8.setFlagsFromString('--semi-space-growth-factor=2'); // V8's default
  })
  .catch((err) => {
    process.stderr.write(`strait: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
