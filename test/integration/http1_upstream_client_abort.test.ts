// An HTTP/1.1 upstream connection outlives a client that went away after its whole request was
// sent (upstream/http1_drain.ts): the rest of the response is read and dropped and the connection
// pooled, when it ends within DRAIN_BYTES and DRAIN_MS; a large or slow answer still closes it.
// Each case has its own upstream, which counts the connections it accepted and saw close, for
// HTTP/1.1 clients (a connection reset) and h2c clients (RST_STREAM CANCEL) on both engines.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingUpstream, hcmListener, type CountingUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What each upstream does with a request for /<case>/...; `/ok` answers at once. */
const CASES = {
  // Answers 100 ms after the request: the client is gone before any of it arrives.
  waiting: (res: http.ServerResponse) => setTimeout(() => res.end('late answer'), 100),
  // Head and half the body at once, the rest 100 ms later: the client leaves mid-body.
  midbody: (res: http.ServerResponse) => {
    res.writeHead(200, { 'content-length': 20 });
    res.write('0123456789');
    setTimeout(() => res.end('abcdefghij'), 100);
  },
  // The same with a chunked body.
  chunked: (res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk');
    setTimeout(() => res.end('last chunk'), 100);
  },
  // 1 MiB: more than is read for a client that left.
  large: (res: http.ServerResponse) => setTimeout(() => res.end(Buffer.alloc(1 << 20, 0x61)), 50),
  // Later than the drain waits (1 s).
  slow: (res: http.ServerResponse) => setTimeout(() => res.end('too late'), 1500),
} as const;
type Case = keyof typeof CASES;
const KEPT: Case[] = ['waiting', 'midbody', 'chunked'];
const CLOSED: Case[] = ['large', 'slow'];
type Proto = 'h1' | 'h2';

interface Up extends CountingUpstream {
  /** Resolves when a request for the case arrives, then when its response is finished or cut. */
  requested: Promise<void>;
  answered: Promise<void>;
}

async function upstream(c: Case): Promise<Up> {
  let onReq!: () => void;
  let onDone!: () => void;
  const requested = new Promise<void>((r) => (onReq = r));
  const answered = new Promise<void>((r) => (onDone = r));
  const up = await countingUpstream((req, res) => {
    req.resume();
    if (req.url === '/ok') {
      res.end('ok');
      return;
    }
    res.on('finish', onDone);
    res.on('close', onDone);
    CASES[c](res);
    onReq();
  });
  return Object.assign(up, { requested, answered });
}

/** A request whose client goes away once the upstream has it, or (`onHead`) once response bytes arrive. */
async function abandon(proto: Proto, port: number, path: string, up: Up, onHead: boolean): Promise<void> {
  if (proto === 'h1') {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    const gotBytes = new Promise<void>((r) => s.once('data', () => r()));
    s.write(`GET ${path} HTTP/1.1\r\nhost: svc\r\n\r\n`);
    await (onHead ? gotBytes : up.requested);
    // An RST: a FIN alone is a half-close, after which the exchange goes on to its end anyway.
    s.resetAndDestroy();
    return;
  }
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  const rq = c.request({ ':path': path, ':authority': 'svc' });
  rq.on('error', () => {});
  const gotHead = new Promise<void>((r) => rq.once('response', () => r()));
  rq.end();
  await (onHead ? gotHead : up.requested);
  rq.close(http2.constants.NGHTTP2_CANCEL);
  await sleep(20);
  c.close();
}

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ port, host: '127.0.0.1', path, agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${b}`));
      })
      .on('error', reject);
  });
}

describe.each(ENGINES)('HTTP/1.1 upstream connections when the client goes away (%s engine)', (engine) => {
  const ups = new Map<string, Up>();
  let strait: StraitProcess;
  let port: number;
  const names: string[] = [];
  for (const c of Object.keys(CASES) as Case[]) for (const p of ['h1', 'h2'] as Proto[]) names.push(`${c}_${p}`);

  beforeAll(async () => {
    for (const n of names) ups.set(n, await upstream(n.split('_')[0] as Case));
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
${names.map((n) => `  - match: { prefix: "/${n}/" }\n    route: { cluster: ${n}, prefix_rewrite: "/", timeout: 0s }`).join('\n')}`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('edge', routes)}
  clusters:
${names.map((n) => staticCluster(n, [ups.get(n)!.port])).join('')}`,
      { engine },
    );
    port = await strait.port('edge');
  });

  afterAll(async () => {
    await strait?.stop();
    for (const u of ups.values()) u.server.close();
  });

  for (const proto of ['h1', 'h2'] as Proto[]) {
    for (const c of KEPT) {
      it(`${proto} client, ${c}: the connection is drained and used by the next request`, async () => {
        const n = `${c}_${proto}`;
        const up = ups.get(n)!;
        await abandon(proto, port, `/${n}/x`, up, c !== 'waiting');
        await up.answered;
        await sleep(100);
        expect(await get(port, `/${n}/ok`)).toBe('200 ok');
        expect(up.accepted).toBe(1);
        expect(up.closed).toBe(0);
        expect(await strait.stat(`cluster.${n}.upstream_cx_total`)).toBe(1);
        expect(await strait.stat(`cluster.${n}.upstream_cx_destroy`)).toBe(0);
      });
    }
    for (const c of CLOSED) {
      it(`${proto} client, ${c}: the connection is closed and the next request gets a new one`, async () => {
        const n = `${c}_${proto}`;
        const up = ups.get(n)!;
        await abandon(proto, port, `/${n}/x`, up, false);
        await up.answered;
        await sleep(100);
        expect(up.closed).toBe(1);
        expect(await get(port, `/${n}/ok`)).toBe('200 ok');
        expect(up.accepted).toBe(2);
      });
    }
  }
});
