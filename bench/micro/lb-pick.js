// Load balancer pick: on the data path once per connection or request, must not allocate.
// Every policy over 8 hosts, equal and unequal weights; the hashing policies both with a
// request hash (precomputed, cycling through 1024 keys) and without one (random fallback), plus
// the cost of hashing a key string into the reusable context before the pick.
const OPS = 1000;
const KEYS = 4096;

export default {
  name: 'LB pick',
  description: 'dist/upstream/lb/*.js: pick() per policy over 8 hosts (equal and 1..8 weights); RING_HASH/MAGLEV with and without a hash',
  async load({ importDist }) {
    const lb = await importDist('upstream/lb/index.js');
    const hostMod = await importDist('upstream/host.js');
    if (!lb || !hostMod) return { skip: 'module not built (dist/upstream/lb/index.js, dist/upstream/host.js)' };
    if (typeof lb.createLoadBalancer !== 'function' || typeof hostMod.Host !== 'function') return { skip: 'module not built: expected createLoadBalancer and Host exports' };
    const mk = (weights) =>
      weights.map((w, i) => new hostMod.Host({ family: 'IPv4', address: `10.0.0.${i + 1}`, port: 80 }, w, 0, '', null));
    const equal = mk([1, 1, 1, 1, 1, 1, 1, 1]);
    const weighted = mk([1, 2, 3, 4, 5, 6, 7, 8]);
    // Some in-flight requests so LEAST_REQUEST compares real loads.
    for (const h of [...equal, ...weighted]) h.counters.rq_active = h.address.address.length % 3;

    const policies = lb.SUPPORTED_LB_POLICIES ?? ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST'];
    const hashing = new Set(['RING_HASH', 'MAGLEV']);
    const Ctx = lb.LbContext;
    // One context per key, hashed up front: the "with hash" tasks measure the pick alone.
    const contexts = Ctx ? Array.from({ length: KEYS }, (_, i) => new Ctx().addString(`user-${i}`)) : [];
    const keys = Array.from({ length: KEYS }, (_, i) => `user-${i}`);
    const shared = Ctx ? new Ctx() : null;

    const tasks = [];
    const add = (name, b, pickOnce) =>
      tasks.push({
        name: `${name} (x${OPS})`,
        opsPerCall: OPS,
        fn: () => {
          let h;
          for (let i = 0; i < OPS; i++) h = pickOnce(b, i);
          if (!h) throw new Error('pick returned null');
        },
      });

    for (const policy of policies) {
      for (const [label, hosts] of [
        ['8 equal', equal],
        ['8 weighted', weighted],
      ]) {
        const b = lb.createLoadBalancer(policy);
        b.update(hosts);
        if (!hashing.has(policy)) {
          add(`${policy} ${label}`, b, (x) => x.pick());
          continue;
        }
        add(`${policy} ${label}, no hash`, b, (x) => x.pick());
        if (!Ctx) continue;
        add(`${policy} ${label}, hash`, b, (x, i) => x.pick(contexts[i & (KEYS - 1)]));
        if (label === '8 equal') add(`${policy} ${label}, hash a key string + pick`, b, (x, i) => x.pick(shared.reset().addString(keys[i & (KEYS - 1)])));
      }
    }
    return { tasks };
  },
};
