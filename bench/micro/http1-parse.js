// HTTP/1.1 head parsing: Strait's parsers (the addon's, native/http1, which the data path uses,
// and the TypeScript fallback, src/protocols/http1/decoder.ts) against Node's bundled llhttp
// through its JS binding (`_http_common.HTTPParser`, what node:http uses), on the same bytes.
import { createRequire } from 'node:module';

const OPS = 1000;
const require = createRequire(import.meta.url);

const REQUEST = Buffer.from(
  'GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\n' +
    'Host: service.example.com\r\n' +
    'User-Agent: wrk/4.2.0\r\n' +
    'Accept: application/json\r\n' +
    'Accept-Encoding: gzip, deflate\r\n' +
    'Connection: keep-alive\r\n' +
    'X-Request-Id: 6f1c1c0e-7a53-4f0e-9a62-0f5d7c1c3f10\r\n' +
    'X-Forwarded-For: 10.0.0.1\r\n' +
    'Cookie: session=abcdef0123456789\r\n' +
    '\r\n',
);
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: nginx\r\n\r\n');

export default {
  name: 'http1-parse',
  description: 'HTTP/1.1 head parse (8 and 4 headers): native (addon) and TypeScript parsers vs llhttp via _http_common.HTTPParser',
  async load({ importDist }) {
    const h1 = await importDist('protocols/http1/index.js');
    if (!h1) return { skip: 'module not built (dist/protocols/http1/index.js)' };
    const nativeHead = await importDist('protocols/http1/native_head.js');
    const nativeMod = await importDist('native.js');
    let nat = null;
    try {
      nat = nativeHead && nativeMod ? nativeHead.nativeHeadParser(nativeMod.loadNative()) : null;
    } catch {
      // addon not built: TypeScript and llhttp rows only
    }
    const limits = h1.DEFAULT_LIMITS;
    const tasks = [
      {
        name: `typescript request head, 8 headers (x${OPS})`,
        opsPerCall: OPS,
        fn: () => {
          for (let i = 0; i < OPS; i++) {
            const h = h1.parseRequestHead(REQUEST, 0, REQUEST.length);
            if (typeof h === 'number') throw new Error(`parse failed: ${h}`);
          }
        },
      },
      {
        name: `typescript request head + Host/route header lookup (x${OPS})`,
        opsPerCall: OPS,
        fn: () => {
          for (let i = 0; i < OPS; i++) {
            const h = h1.parseRequestHead(REQUEST, 0, REQUEST.length);
            if (typeof h === 'number' || !h.host || !h1.getHeader(h, 'x-request-id')) throw new Error('parse failed');
          }
        },
      },
      {
        name: `typescript response head, 4 headers (x${OPS})`,
        opsPerCall: OPS,
        fn: () => {
          for (let i = 0; i < OPS; i++) {
            const h = h1.parseResponseHead(RESPONSE, 0, RESPONSE.length);
            if (typeof h === 'number') throw new Error(`parse failed: ${h}`);
          }
        },
      },
    ];
    if (nat) {
      tasks.push(
        {
          name: `native request head, 8 headers (x${OPS})`,
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) {
              const h = nat.parseRequestHead(REQUEST, 0, REQUEST.length, limits);
              if (typeof h === 'number') throw new Error(`parse failed: ${h}`);
            }
          },
        },
        {
          name: `native response head, 4 headers (x${OPS})`,
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) {
              const h = nat.parseResponseHead(RESPONSE, 0, RESPONSE.length, limits);
              if (typeof h === 'number') throw new Error(`parse failed: ${h}`);
            }
          },
        },
      );
    }
    let HTTPParser = null;
    try {
      ({ HTTPParser } = require('_http_common'));
    } catch {
      // internal module gone in this Node: report only our rows
    }
    if (HTTPParser) {
      const mk = (type) => {
        const p = new HTTPParser();
        p.initialize(type, {}, 0, 0);
        let n = 0;
        p[HTTPParser.kOnHeadersComplete] = () => {
          n++;
        };
        p[HTTPParser.kOnMessageComplete] = () => {};
        p[HTTPParser.kOnBody] = () => {};
        p[HTTPParser.kOnHeaders] = () => {};
        return { p, count: () => n };
      };
      const rq = mk(HTTPParser.REQUEST);
      const rs = mk(HTTPParser.RESPONSE);
      tasks.push(
        {
          name: `llhttp request head, 8 headers (x${OPS})`,
          opsPerCall: OPS,
          fn: () => {
            const before = rq.count();
            for (let i = 0; i < OPS; i++) rq.p.execute(REQUEST);
            if (rq.count() - before !== OPS) throw new Error('llhttp did not complete every head');
          },
        },
        {
          name: `llhttp response head, 4 headers (x${OPS})`,
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) {
              // A response with a body: re-initialize so each iteration starts at a head.
              rs.p.initialize(HTTPParser.RESPONSE, {}, 0, 0);
              rs.p.execute(RESPONSE);
            }
          },
        },
      );
    }
    return { tasks };
  },
};
