// "direct": the load generator talks to the upstream itself. No proxy process, so it measures the
// ceiling that client + upstream reach on their core(s); every proxied row is read against it.
export default {
  name: 'direct',
  kind: 'direct',
  describe: 'no proxy: load generator straight to the upstream (the limit)',
  detect: () => ({ ok: true, version: '-' }),
  // Any layer: there is nothing to configure.
  configs: new Proxy({}, { get: () => () => ({ direct: true }), has: () => true }),
};
