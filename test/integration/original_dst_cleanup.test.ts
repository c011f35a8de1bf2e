// ORIGINAL_DST `cleanup_interval`: a destination no request has used for an interval is dropped
// from the cluster and its pooled keep-alive connections close, as in Envoy. Without it every
// address a captured app ever reached would keep a host and an idle upstream connection.
// The original destination is given in a PROXY protocol header (as the explicit-mode SDK does),
// so the test needs no root. HTTP/1.1 and h2c requests both reach the original destination.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, startStraitFile, type StraitProcess } from '../helpers/strait.js';

interface Upstream {
  server: http.Server;
  port: number;
  open: () => number;
  accepted: () => number;
  closed: Promise<void>;
}

/** A keep-alive HTTP upstream that reports when its first connection closes. */
function upstream(): Promise<Upstream> {
  let open = 0;
  let accepted = 0;
  let firstClosed!: () => void;
  const closed = new Promise<void>((r) => (firstClosed = r));
  const server = http.createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = 600_000;
  server.on('connection', (s) => {
    open++;
    accepted++;
    s.on('close', () => {
      open--;
      firstClosed();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, open: () => open, accepted: () => accepted, closed })));
}

function listener(name: string, cluster: string): Record<string, unknown> {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    listener_filters: [{ name: 'envoy.filters.listener.proxy_protocol', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol' } }],
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

function config(): string {
  const cluster = (name: string, cleanup: string) => ({ name, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '2s', cleanup_interval: cleanup });
  return JSON.stringify({
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [listener('short', 'passthrough_short'), listener('long', 'passthrough_long')],
      clusters: [cluster('passthrough_short', '0.3s'), cluster('passthrough_long', '3600s')],
    },
  });
}

/** One GET through `port` to the original destination 127.0.0.1:`dst`; the connection stays open. */
function requestVia(port: number, dst: number): Promise<{ sock: net.Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`PROXY TCP4 127.0.0.1 127.0.0.1 ${sock.localPort} ${dst}\r\nGET / HTTP/1.1\r\nhost: app\r\n\r\n`);
    });
    let got = '';
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (/\r\n\r\nok$/.test(got)) resolve({ sock, body: got });
    });
    sock.on('error', reject);
  });
}

describe.each(ENGINES)('ORIGINAL_DST cleanup_interval (%s engine)', (engine) => {
  let strait: StraitProcess;
  let upShort: Upstream;
  let upLong: Upstream;

  beforeAll(async () => {
    upShort = await upstream();
    upLong = await upstream();
    strait = await startStraitFile('strait.json', config(), { engine });
  });

  afterAll(async () => {
    await strait?.stop();
    upShort?.server.close();
    upLong?.server.close();
  });

  it('forgets an unused destination and closes its pooled connection; a long interval keeps both', async () => {
    const short = await requestVia(await strait.port('short'), upShort.port);
    const long = await requestVia(await strait.port('long'), upLong.port);
    try {
      expect(short.body).toMatch(/^HTTP\/1\.1 200/);
      expect(long.body).toMatch(/^HTTP\/1\.1 200/);
      expect(upShort.accepted()).toBe(1);
      expect(upLong.accepted()).toBe(1);
      // The downstream connections stay open and idle: only the cleanup can close the pooled
      // upstream connection (its keep-alive timeout is ten minutes).
      await upShort.closed;
      expect(upShort.open()).toBe(0);
      const clusters = (await strait.get('/clusters')).text;
      expect(clusters).not.toContain(`passthrough_short::127.0.0.1:${upShort.port}::`);
      // The control: the same idle time did not touch the cluster with a one-hour interval.
      expect(clusters).toContain(`passthrough_long::127.0.0.1:${upLong.port}::cx_active::1`);
      expect(upLong.open()).toBe(1);

      // The destination comes back on the next request, over a new connection.
      short.sock.write('GET / HTTP/1.1\r\nhost: app\r\n\r\n');
      await new Promise<void>((resolve) => {
        let got = '';
        short.sock.on('data', (d) => {
          got += d.toString('latin1');
          if (/\r\n\r\nok$/.test(got)) resolve();
        });
      });
      expect(upShort.accepted()).toBe(2);
      expect((await strait.get('/clusters')).text).toContain(`passthrough_short::127.0.0.1:${upShort.port}::rq_total::1`);
    } finally {
      short.sock.destroy();
      long.sock.destroy();
    }
  });

  it('an h2c request is routed to its original destination as well', async () => {
    const port = await strait.port('long');
    const before = upLong.accepted();
    const client = http2.connect('http://app', {
      createConnection: () => {
        const sock = net.connect(port, '127.0.0.1');
        // The header goes out before node:http2's connection preface.
        sock.write(`PROXY TCP4 127.0.0.1 127.0.0.1 40000 ${upLong.port}\r\n`);
        return sock;
      },
    });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = client.request({ ':path': '/' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(body).toBe('ok');
      // Served by the cluster's host for that destination (the pooled connection of the first test).
      expect((await strait.get('/clusters')).text).toMatch(new RegExp(`passthrough_long::127\\.0\\.0\\.1:${upLong.port}::rq_total::2`));
      expect(upLong.accepted()).toBe(before);
    } finally {
      client.close();
    }
  });

  it('a bad cleanup_interval is refused with its path', async () => {
    const bad = JSON.parse(config());
    bad.static_resources.clusters[0].cleanup_interval = '0s';
    const s = await startStraitFile('strait.json', JSON.stringify(bad), { engine, waitReady: false });
    const code = await s.wait();
    expect(code).not.toBe(0);
    expect(s.stderr).toMatch(/clusters\[0\]\.cleanup_interval.*positive duration/);
  });
});
