// Load balancer pick: on the data path once per connection or request, must not allocate.
const OPS = 1000;

export default {
  name: 'LB pick',
  description: 'dist/upstream/lb/*.js: pick() over 8 equal-weight hosts, and 8 weighted hosts',
  async load({ importDist }) {
    const lb = await importDist('upstream/lb/index.js');
    const hostMod = await importDist('upstream/host.js');
    if (!lb || !hostMod) return { skip: 'module not built (dist/upstream/lb/index.js, dist/upstream/host.js)' };
    if (typeof lb.createLoadBalancer !== 'function' || typeof hostMod.Host !== 'function') return { skip: 'module not built: expected createLoadBalancer and Host exports' };
    const mk = (weights) =>
      weights.map((w, i) => new hostMod.Host({ family: 'IPv4', address: `10.0.0.${i + 1}`, port: 80 }, w, 0, '', null));
    const equal = mk([1, 1, 1, 1, 1, 1, 1, 1]);
    const weighted = mk([1, 2, 3, 4, 5, 6, 7, 8]);
    const tasks = [];
    for (const policy of lb.SUPPORTED_LB_POLICIES ?? ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST']) {
      for (const [label, hosts] of [
        ['8 equal', equal],
        ['8 weighted', weighted],
      ]) {
        const b = lb.createLoadBalancer(policy);
        b.update(hosts);
        tasks.push({
          name: `${policy} ${label} (x1000)`,
          opsPerCall: OPS,
          fn: () => {
            let h;
            for (let i = 0; i < OPS; i++) h = b.pick();
            if (!h) throw new Error('pick returned null');
          },
        });
      }
    }
    return { tasks };
  },
};
