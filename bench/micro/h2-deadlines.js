// HTTP/2 route timeouts: a setTimeout and clearTimeout per exchange (before) against the shared
// per-length lists of dist/filters/network/http_connection_manager/deadlines.js (after), 64
// exchanges armed and then disarmed as a loaded connection does; the clock is read once per batch
// (as the native HTTP/2 sessions now do) in both rows. Measured 2026-12-04 on the shared 2-core
// dev machine, `node bench/micro/index.js 'h2 route deadlines'`: see perf-reports/2026-12-04-h2-js-path-cpu.md.
const N = 64;

export default {
  name: 'h2 route deadlines',
  description: 'dist/filters/network/http_connection_manager/deadlines.js: arm and disarm a 15 s route timeout, against setTimeout/clearTimeout',
  async load({ importDist }) {
    const dl = await importDist('filters/network/http_connection_manager/deadlines.js');
    const clock = await importDist('protocols/http1/clock.js');
    if (!dl || !clock) return { skip: 'module not built (dist/filters/network/http_connection_manager/deadlines.js)' };
    const owners = [];
    for (let i = 0; i < N; i++) owners.push({ dlPrev: null, dlNext: null, dlDue: 0, dlList: null, timer: null, onDeadline() {} });
    return {
      tasks: [
        {
          name: 'setTimeout + clearTimeout per exchange (before)',
          opsPerCall: N,
          fn() {
            const c = clock.enterBatch();
            for (const o of owners) o.timer = setTimeout(() => o.onDeadline(), 15_000);
            for (const o of owners) clearTimeout(o.timer);
            clock.leaveBatch(c);
          },
        },
        {
          name: 'armDeadline + disarmDeadline (after)',
          opsPerCall: N,
          fn() {
            const c = clock.enterBatch();
            for (const o of owners) dl.armDeadline(o, 15_000);
            for (const o of owners) dl.disarmDeadline(o);
            clock.leaveBatch(c);
          },
        },
      ],
    };
  },
};
