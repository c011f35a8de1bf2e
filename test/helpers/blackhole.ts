import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/**
 * A listening socket that never accepts, with its accept queue filled: further SYNs are
 * dropped by the kernel, so a connect to it hangs until the caller's timeout. Runs in a
 * python3 child because Node always accepts what it listens on.
 */
export async function blackholePort(): Promise<{ port: number; close(): void }> {
  const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    py.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
    py.once('error', reject);
  });
  // Fill the accept queue (backlog 0 holds one or two) so the next SYN is dropped.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    close: () => {
      for (const s of fillers) s.destroy();
      (py as ChildProcess).kill('SIGKILL');
    },
  };
}
