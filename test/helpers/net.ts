import crypto from 'node:crypto';
import net from 'node:net';

/** An upstream that echoes every byte and carries half-close back (allowHalfOpen). */
export async function echoServer(): Promise<{ server: net.Server; port: number; connections: number; dropAll(): void; close(): Promise<void> }> {
  const state = { connections: 0 };
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    state.connections++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return state.connections;
    },
    /** Closes every connection this upstream holds (the upstream side hangs up). */
    dropAll: () => {
      for (const s of open) s.destroy();
    },
    close: () => closeServer(server),
  };
}

/** An upstream that writes its tag and closes: tells which host served a connection. */
export async function tagServer(tag: string): Promise<{ server: net.Server; port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    // Read (and drop) what the client sends, so its FIN is seen and the socket closes: a paused
    // socket would stay half-open and keep close() waiting.
    s.resume();
    s.end(tag);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, close: () => closeServer(server) };
}

/**
 * Listens `server` (net, or node:http2's, which is one) on 127.0.0.1 at a port from the OS: the
 * port, and a close that destroys the connections still open before closing the server.
 */
export async function listenLocal(server: net.Server): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

export function closeServer(server: net.Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/**
 * A port with nothing listening on it. Taken below the kernel's ephemeral range (32768 up, see
 * /proc/sys/net/ipv4/ip_local_port_range), where no port-0 bind lands: a port the OS gave and
 * took back could be handed to the next listener (a proxy's own, under a busy parallel run),
 * and "refused" would then reach a live socket. Checked free by binding it once.
 */
export async function deadPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    await closeServer(s);
    return port;
  }
  throw new Error('no free port below the ephemeral range');
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads until the peer ends; resolves with everything received. */
export function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** Connects, reads what the server sends until close. */
export async function fetchTag(port: number): Promise<string> {
  const s = await connect(port);
  const b = await readAll(s);
  s.destroy();
  return b.toString();
}

/** Resolves 'closed' when the socket ends or closes, 'open' if still open after ms. */
export function closedWithin(s: net.Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('open'), ms);
    const done = () => {
      clearTimeout(t);
      resolve('closed');
    };
    s.once('end', done);
    s.once('close', done);
  });
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/**
 * A connected TCP pair on 127.0.0.1: `client` (whose fd a test writes to directly) and the
 * accepted `peer`, whose received bytes are collected. `waitFor(n)` resolves once n bytes are in.
 */
export async function tcpPair(): Promise<{ client: net.Socket; received: () => Buffer; waitFor: (n: number) => Promise<Buffer>; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  const peer = await accepted;
  const got: Buffer[] = [];
  let wake: (() => void) | null = null;
  peer.on('data', (d) => {
    got.push(d);
    wake?.();
  });
  const received = () => Buffer.concat(got);
  return {
    client,
    received,
    async waitFor(n) {
      while (received().length < n) await new Promise<void>((r) => (wake = r));
      return received();
    },
    close() {
      client.destroy();
      peer.destroy();
      server.close();
    },
  };
}
