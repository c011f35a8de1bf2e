// Route lookup cost: the RPC route table (interface, then method) and the HTTP route table
// (virtual host by domain, then prefix/path/header routes), each with 50 services/routes and the
// match near the end, the realistic worst case for first-match tables.
const OPS = 1000;

export default {
  name: 'route lookup',
  description: 'dist/router/{rpc,http}_route_table.js: one lookup in a 50-entry table, match near the end',
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
      ],
    };
  },
};
