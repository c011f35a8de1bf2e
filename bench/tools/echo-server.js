// Upstream for the idle-connections workload: echoes every byte, prints "port N" once listening
// and "conns N" whenever asked on stdin ("count\n"), so the runner can see how many proxied
// connections really reached the upstream. Started by the bench with a raised fd limit.
import net from 'node:net';
import readline from 'node:readline';

let active = 0;
let total = 0;
const server = net.createServer((s) => {
  active++;
  total++;
  s.setNoDelay(true);
  s.on('error', () => {});
  s.on('close', () => active--);
  s.pipe(s);
});
server.maxConnections = 1 << 20;
server.on('error', (err) => {
  process.stderr.write(`echo-server: ${err.message}\n`);
  process.exit(2);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`port ${server.address().port}\n`);
});
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'count') process.stdout.write(`conns active=${active} total=${total}\n`);
});
process.stdin.on('end', () => process.exit(0));
