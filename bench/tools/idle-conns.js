// Opens N downstream connections to a proxy and keeps them idle: the memory workload's client.
// Each connection sends one byte and waits for it to come back through the proxy from the echo
// upstream, which proves the proxy accepted it and holds a live upstream connection. Then the
// connections stay open, silent, until stdin says "close" (or ends).
//   node idle-conns.js PORT N [PARALLEL]
// prints one JSON line: {"requested":N,"ok":..,"failed":..,"errors":{code:count},"ms":..}
import net from 'node:net';
import readline from 'node:readline';

const port = Number(process.argv[2]);
const n = Number(process.argv[3]);
const parallel = Number(process.argv[4] ?? 256);
const sockets = [];
const errors = {};
let ok = 0;
let failed = 0;

function one() {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let settled = false;
    const t = setTimeout(() => fail('ETIMEDOUT'), 10_000);
    function fail(code) {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      errors[code] = (errors[code] ?? 0) + 1;
      failed++;
      s.destroy();
      resolve();
    }
    s.once('error', (e) => fail(e.code ?? e.message));
    s.once('close', () => fail('closed before echo'));
    s.once('connect', () => s.write('x'));
    s.once('data', (d) => {
      if (settled) return;
      if (d.toString() !== 'x') return fail('wrong echo');
      settled = true;
      clearTimeout(t);
      ok++;
      s.removeAllListeners('close');
      s.on('error', () => {});
      sockets.push(s);
      resolve();
    });
  });
}

const t0 = performance.now();
let next = 0;
async function worker() {
  while (next < n) {
    next++;
    await one();
  }
}
await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
process.stdout.write(`${JSON.stringify({ requested: n, ok, failed, errors, ms: Math.round(performance.now() - t0) })}\n`);

const close = () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
};
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'close') close();
});
process.stdin.on('end', close);
