#!/usr/bin/env node
// Thin launcher so `npx strait` and `node bin/strait.js` run the compiled CLI.
import('../dist/cli.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`strait: ${err?.stack ?? err}\n`);
  process.exit(1);
});
