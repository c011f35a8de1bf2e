// Route lookup cost: the RPC route table (interface, then method) and the HTTP route table
// (virtual host by domain, then prefix/path/header routes), each with 50 services/routes and the
// match near the end, the realistic worst case for first-match tables.
//
// The HTTP table is indexed (a radix tree over the literal text each prefix, path or regex matcher
// needs the path to start with, merged by route order with the routes that have none). Its rows at 50, 500 and 5,000 routes (Istio
// puts thousands in one virtual host) run next to routeByScan, the in-order scan the table used
// before and keeps as the tests' reference, so one run gives the ratio. Measured 2026-12-03 on the
// shared 2-core dev machine, `node bench/micro/index.js 'route lookup'`, ns per lookup:
//
//   routes (1 in 25 a regex), request     indexed   scan (before)   scan / indexed
//   50 prefixes, 48th matches (old row)    117       2,182           19x
//   50, last matches                       242         899            4x
//   50, miss                                79       1,032           13x
//   500, last matches                      175      15,235           87x
//   500, miss                              141      12,882           91x
//   5,000, last matches                    167     100,189          600x
//   5,000, miss                             82      91,105         1100x
// The indexed cost follows the path's depth in the tree, not the table's size; it grows only
// with routes sharing one literal or with regexes that have no literal prefix.
//
const OPS = 1000;

export default {
  name: 'route lookup',
  description: 'dist/router/{rpc,http}_route_table.js: one lookup in a 50-entry table, match near the end; HTTP at 50/500/5,000 routes, indexed vs in-order scan',
  async load({ importDist }) {
    const rpc = await importDist('router/rpc_route_table.js');
    const http = await importDist('router/http_route_table.js');
    if (!rpc || !http) return { skip: 'module not built (dist/router)' };
    const known = new Set(['c']);
    const errors = [];
    const services = [];
    for (let i = 0; i < 50; i++) {
      services.push({ interface: `com.example.Service${i}`, version: '1.0', routes: [{ match: { method: { name: { exact: 'get' } } }, route: { cluster: 'c' } }, { match: {}, route: { cluster: 'c' } }] });
    }
    const rpcTable = rpc.RpcRouteTable.compile(services, 'route_config', known, errors);
    const routes = [];
    for (let i = 0; i < 50; i++) routes.push({ match: { prefix: `/api/v${i}/` }, route: { cluster: 'c' } });
    const httpTable = http.HttpRouteTable.compile(
      { virtual_hosts: [{ name: 'other', domains: ['other.example.com'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }, { name: 'main', domains: ['*.example.com', 'example.com'], routes }] },
      'route_config',
      known,
      errors,
    );
    if (errors.length) return { skip: `route tables did not compile: ${errors[0].path}: ${errors[0].message}` };
    // Views as the filters build them: strings already decoded (the per-connection caches).
    // Istio-shaped tables: a prefix and an exact path per service, a few regexes, a catch-all last
    // only in the hit table (a miss must fall through everything).
    const sized = [];
    for (const n of [50, 500, 5000]) {
      const r = [];
      for (let i = 0; i < n; i++) {
        if (i % 25 === 7) r.push({ match: { safe_regex: { regex: `/re${i}/[a-z]+` } }, route: { cluster: 'c' } });
        else if (i % 2) r.push({ match: { path: `/svc${i}/get` }, route: { cluster: 'c' } });
        else r.push({ match: { prefix: `/svc${i}/` }, route: { cluster: 'c' } });
      }
      const t = http.HttpRouteTable.compile({ virtual_hosts: [{ name: 'main', domains: ['*.example.com'], routes: r }] }, 'route_config', known, errors);
      const last = n % 2 === 0 ? n - 2 : n - 1;
      sized.push({ n, t, hit: { host: 'www.example.com', path: `/svc${last}/items?id=1`, method: 'GET', header: () => undefined }, miss: { host: 'www.example.com', path: '/svc/none', method: 'GET', header: () => undefined } });
    }
    if (errors.length) return { skip: `route tables did not compile: ${errors[0].path}: ${errors[0].message}` };
    if (typeof sized[0].t.routeByScan !== 'function') return { skip: 'dist/router/http_route_table.js has no routeByScan (not rebuilt)' };
    for (const s of sized) if (!s.t.route(s.hit) || s.t.route(s.miss) || s.t.route(s.hit) !== s.t.routeByScan(s.hit)) return { skip: `lookup in ${s.n} routes did not match (fixture out of date)` };
    const rpcView = { iface: () => 'com.example.Service47', version: () => '1.0', group: () => '', method: () => 'get', header: () => undefined };
    const httpView = { host: 'www.example.com', path: '/api/v47/items?id=1', method: 'GET', header: () => undefined };
    if (!rpcTable.route(rpcView) || !httpTable.route(httpView)) return { skip: 'lookup did not match (fixture out of date)' };
    return {
      tasks: [
        {
          name: 'RPC: 50 services, 48th matches (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) rpcTable.route(rpcView);
          },
        },
        {
          name: 'HTTP: wildcard vhost, 50 prefixes, 48th matches (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) httpTable.route(httpView);
          },
        },
        {
          name: 'HTTP: wildcard vhost, 50 prefixes, 48th matches, scan (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) httpTable.routeByScan(httpView);
          },
        },
        ...sized.flatMap(({ n, t, hit, miss }) => {
          // The scan rows cost ~n x 40 ns: fewer ops per call keeps each call short.
          const scanOps = Math.max(1, Math.floor((OPS * 50) / n));
          const row = (what, view, scan) => ({
            name: `HTTP: ${n} routes, ${what}, ${scan ? 'scan' : 'indexed'} (x${scan ? scanOps : OPS})`,
            opsPerCall: scan ? scanOps : OPS,
            fn: scan
              ? () => {
                  for (let i = 0; i < scanOps; i++) t.routeByScan(view);
                }
              : () => {
                  for (let i = 0; i < OPS; i++) t.route(view);
                },
          });
          return [row('last matches', hit, false), row('last matches', hit, true), row('miss', miss, false), row('miss', miss, true)];
        }),
      ],
    };
  },
};
