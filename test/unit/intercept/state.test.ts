// The state records `strait intercept enable` leaves for a running Strait, and what Strait makes
// of them (intercept.* gauges, the config_dump entry). No kernel needed: records are files.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cgroup2Mount } from '../../../src/intercept/detect.js';
import { interceptReport, InterceptStatusReporter, netnsInode, readRecords, removeRecords, STATE_DIR_ENV, writeRecord, type InterceptRecord } from '../../../src/intercept/state.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { tmpDir } from '../../helpers/strait.js';

function rec(over: Partial<InterceptRecord>): InterceptRecord {
  return {
    name: 'default',
    mode: 'iptables',
    capture: true,
    captureIpv6: false,
    accelerated: false,
    netns: netnsInode(),
    cgroup: null,
    outboundPort: 15001,
    inboundPort: null,
    excludePorts: [],
    exemptUids: [],
    exemptGids: [1337],
    enabledAt: '2020-01-01T00:00:00.000Z',
    ...over,
  };
}

describe('intercept state records', () => {
  let dir: string;
  let stateDir: string;
  beforeEach(() => {
    dir = tmpDir('strait-state-');
    stateDir = path.join(dir, 'state');
    process.env[STATE_DIR_ENV] = stateDir;
  });
  afterEach(() => {
    delete process.env[STATE_DIR_ENV];
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes one file per name and netns, reads them back, removes the directory with the last', () => {
    writeRecord(rec({ name: 'a' }));
    writeRecord(rec({ name: 'a', netns: 1 }));
    writeRecord(rec({ name: 'b', mode: 'sockmap', cgroup: '/sys/fs/cgroup/x' }));
    expect(fs.readdirSync(stateDir).sort()).toEqual([`a@netns-${netnsInode()}.json`, 'a@netns-1.json', `b@netns-${netnsInode()}.json`].sort());
    expect(readRecords().map((r) => `${r.name}/${r.mode}`).sort()).toEqual(['a/iptables', 'a/iptables', 'b/sockmap']);
    expect(removeRecords((r) => r.netns === 1)).toEqual(['a@netns-1.json']);
    expect(removeRecords(() => true)).toHaveLength(2);
    expect(fs.existsSync(stateDir)).toBe(false);
    expect(() => writeRecord(rec({ name: '../x' }))).toThrow(/bad name/);
  });

  it('ignores files that are not records', () => {
    fs.mkdirSync(stateDir);
    fs.writeFileSync(path.join(stateDir, 'junk.json'), '{not json');
    fs.writeFileSync(path.join(stateDir, 'other.json'), JSON.stringify({ name: 'x', mode: 'ipvs' }));
    expect(readRecords()).toEqual([]);
  });

  it("applies iptables records of this process's netns only", () => {
    writeRecord(rec({ name: 'other', netns: 1 }));
    expect(interceptReport()).toEqual({ mode: 'none', capture: false, accelerated: false, installations: [] });
    writeRecord(rec({ name: 'mine' }));
    const r = interceptReport();
    expect(r.mode).toBe('iptables');
    expect(r.installations.map((i) => i.name)).toEqual(['mine']);
  });

  it('skips a sockmap record whose pins are gone, or whose cgroup does not hold this process', () => {
    // Our own cgroup, but nothing pinned under this name: stale (say, after a reboot).
    const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    const mount = cgroup2Mount();
    writeRecord(rec({ name: `stale-${process.pid}`, mode: 'sockmap', accelerated: true, cgroup: own && mount ? path.join(mount, own.slice(3)) : '/' }));
    writeRecord(rec({ name: 'elsewhere', mode: 'sockmap', accelerated: true, cgroup: '/nonexistent/cgroup' }));
    expect(interceptReport().mode).toBe('none');
  });

  it('turns records into intercept.* gauges and a config_dump entry, re-read on each look', () => {
    const stats = new StatsStore();
    const rep = new InterceptStatusReporter(stats.root);
    const gauges = () => Object.fromEntries(stats.renderText(/^intercept\./).trim().split('\n').map((l) => l.split(': ')));
    expect(gauges()).toEqual({ 'intercept.mode': '0', 'intercept.capture': '0', 'intercept.accelerated': '0' });
    const base = [{ '@type': 'x' }];
    expect(rep.withDump(base)).toBe(base);

    writeRecord(rec({ name: 'mine' }));
    const dump = rep.withDump(base);
    expect(dump).toHaveLength(2);
    expect(dump[1]).toMatchObject({ '@type': 'type.googleapis.com/strait.admin.v1.InterceptConfigDump', mode: 'iptables', capture: true, accelerated: false });
    expect(gauges()).toEqual({ 'intercept.mode': '1', 'intercept.capture': '1', 'intercept.accelerated': '0' });
    expect(base).toHaveLength(1); // the static dump is not modified

    removeRecords(() => true);
    rep.refresh();
    expect(gauges()['intercept.mode']).toBe('0');
  });
});
