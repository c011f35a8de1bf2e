// `strait intercept` as an operator uses it: auto picks the best mode and falls back when BPF
// cannot load, cleanup removes what a crashed sidecar left, failures leave nothing behind.
// Every case works in a netns and cgroup of its own and proves the host unchanged at the end.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIN_ROOT } from '../../src/intercept/sockmap.js';
import { Cgroup, baselineHostState, intercept, kernelSkipReason, Netns, restoreBpffs, settledHostState, type HostState } from './helpers.js';

const skip = await kernelSkipReason({ sockmap: true, iptables: true });
if (skip) console.warn(`test/bpf/lifecycle: SKIPPED: ${skip}`);
const NAME = `test-life-${process.pid}`;
const nsRules = (ns: Netns) => ns.run('iptables-save', ['-t', 'nat']).split('\n').filter((l) => l.startsWith('-A ') || /^:STRAIT/.test(l));

describe.skipIf(!!skip)(skip ? `intercept lifecycle (skipped: ${skip})` : 'intercept lifecycle', () => {
  let before: HostState;
  let ns: Netns;
  let cg: Cgroup;

  beforeAll(async () => {
    before = await baselineHostState();
    ns = new Netns('life');
    cg = new Cgroup('life');
  });

  afterAll(async () => {
    // In case a case failed half-way: the same cleanup an operator would run.
    const r = ns ? await intercept(['cleanup'], { netns: ns }) : null;
    await cg?.remove();
    ns?.remove();
    restoreBpffs(before);
    expect(r?.code, r?.stderr).toBe(0);
    expect(await settledHostState(before)).toEqual(before);
  });

  it('status reports what the host supports, IPVS included', async () => {
    const s = await intercept(['status', '--probe']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.mode).toBe('none');
    expect(s.json.host.sockmap.available).toBe(true);
    expect(s.json.host.iptables.available).toBe(true);
    expect(typeof s.json.host.ipvs.available).toBe('boolean');
    if (!fs.existsSync('/proc/net/ip_vs')) expect(s.json.host.ipvs.reason).toMatch(/not in this kernel/);
  });

  it('auto chooses sockmap here; cleanup after a "crash" removes pins and chains', async () => {
    const e = await intercept(['enable', '--name', NAME, '--cgroup', cg.path, '--outbound-port', '15001', '--exempt-gid', '1337'], { netns: ns });
    expect(e.code, e.stderr).toBe(0);
    expect(e.json.mode).toBe('sockmap');
    expect(e.json.skipped).toEqual([]);
    // A second, iptables installation in the netns: cleanup must find both kinds.
    const i = await intercept(['enable', '--mode', 'iptables', '--outbound-port', '15001', '--exempt-gid', '1337'], { netns: ns });
    expect(i.code, i.stderr).toBe(0);
    const s = await intercept(['status', '--name', NAME], { netns: ns });
    expect(s.json.mode).toBe('sockmap+iptables');
    expect(s.json.sockmap.cgroup).toBe(cg.path);
    expect(s.json.sockmap.capture.connect4Attached).toBe(true);
    expect(s.json.records.map((r: any) => r.mode).sort()).toEqual(['iptables', 'sockmap']);

    // The CLI exits after enable: nothing is running, as after a sidecar crash.
    const c = await intercept(['cleanup'], { netns: ns });
    expect(c.code, c.stderr).toBe(0);
    // --outbound-port with an exemption: sockmap mode captures with connect4/6 + getsockopt too.
    expect(c.json.removed.pins[NAME].sort()).toEqual([
      'connect4_link',
      'connect6_link',
      'getpeername4_link',
      'getpeername6_link',
      'getsockopt_link',
      'orig_by_cookie',
      'orig_by_tuple',
      'redirect_prog',
      'sock_hash',
      'sockops_link',
      'sockops_prog',
      'stats',
    ]);
    // The state records of both installations (sockmap, and iptables in this netns) go too.
    expect(c.json.removed.records).toHaveLength(2);
    expect(c.json.removed.chains.ipv4).toEqual(['STRAIT_OUTPUT']);
    expect(fs.existsSync(PIN_ROOT)).toBe(false);
    expect(nsRules(ns)).toEqual([]);
    expect((await intercept(['status', '--name', NAME], { netns: ns })).json.mode).toBe('none');
    // A cleanup with nothing to do is fine too.
    const again = await intercept(['cleanup'], { netns: ns });
    expect(again.code, again.stderr).toBe(0);
    expect(again.json.removed.pins).toEqual({});
    expect(Object.values(again.json.removed.chains).flat()).toEqual([]);
  });

  it('auto falls back to iptables when loading BPF fails (no CAP_BPF/CAP_SYS_ADMIN)', async () => {
    const e = await intercept(['enable', '--name', NAME, '--cgroup', cg.path, '--outbound-port', '15001', '--exempt-gid', '1337'], { netns: ns, dropCaps: '-bpf,-sys_admin,-perfmon' });
    expect(e.code, e.stderr).toBe(0);
    expect(e.json.mode).toBe('iptables');
    expect(e.json.skipped[0].mode).toBe('sockmap');
    // The kernel said no to the load itself, not just a guess from the capability set.
    expect(e.json.skipped[0].reason).toMatch(/loading Strait's BPF programs failed: .*Operation not permitted/s);
    expect(fs.existsSync(`${PIN_ROOT}/${NAME}`)).toBe(false);
    expect(nsRules(ns)).toContain('-A STRAIT_OUTPUT -p tcp -j REDIRECT --to-ports 15001');
    const d = await intercept(['disable', '--name', NAME], { netns: ns });
    expect(d.code, d.stderr).toBe(0);
    expect(nsRules(ns)).toEqual([]);
  });

  it('auto ends at none (explicit addressing) when neither works, and installs nothing', async () => {
    // No exemption for Strait's own traffic: iptables refuses rather than create a loop.
    const e = await intercept(['enable', '--name', NAME, '--outbound-port', '15001'], { netns: ns, dropCaps: '-bpf,-sys_admin,-perfmon' });
    expect(e.code, e.stderr).toBe(0);
    expect(e.json.mode).toBe('none');
    expect(e.json.skipped.map((s: any) => s.mode)).toEqual(['sockmap', 'iptables', 'explicit']);
    expect(e.json.skipped[1].reason).toMatch(/--exempt-uid or --exempt-gid/);
    // Explicit addressing needs the unix socket of Strait's proxy_protocol listener.
    expect(e.json.skipped[2].reason).toMatch(/needs --outbound-pipe/);
    expect(e.json.details.env).toEqual({ STRAIT_OUTBOUND_ADDR: '127.0.0.1:15001' });
    expect(nsRules(ns)).toEqual([]);
  });

  it('an explicit mode that cannot work fails with the reason and leaves nothing', async () => {
    // A cgroup v1 directory: sockops needs cgroup v2.
    const v1 = fs.readdirSync('/sys/fs/cgroup').map((d) => `/sys/fs/cgroup/${d}`).find((p) => p !== cg.path && !p.endsWith('unified') && fs.existsSync(`${p}/tasks`));
    const bad = v1 ?? '/tmp';
    const e = await intercept(['enable', '--mode', 'sockmap', '--name', NAME, '--cgroup', bad]);
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/is not a cgroup v2 directory/);
    expect(fs.existsSync(`${PIN_ROOT}/${NAME}`)).toBe(false);
    const m = await intercept(['enable', '--mode', 'bogus']);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/--mode must be one of/);
  });
});
