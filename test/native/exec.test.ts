// The addon's execv (native/process/exec.cc), as bin/strait.js uses it: a successful exec is
// covered by test/integration/launcher_threads.test.ts (the process's command line changes);
// here, a failed one must leave this process as it was, stdio's close-on-exec flags included.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';

const execv = (loadNative() as unknown as { execv: (path: string, argv: unknown) => never }).execv;

/** Whether fd has O_CLOEXEC, from /proc (octal flags; O_CLOEXEC is 02000000 on Linux). */
function cloexec(fd: number): boolean {
  const m = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return (parseInt(m![1]!, 8) & 0o2000000) !== 0;
}

describe('execv', () => {
  it('throws with the errno name when the exec fails, and the process carries on unchanged', () => {
    const before = [0, 1, 2].map(cloexec);
    let err: (Error & { code?: string; errno?: number }) | undefined;
    try {
      execv('/nonexistent/strait-node', ['node', '--version']);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.code).toBe('ENOENT');
    expect(err?.errno).toBe(2);
    expect(err?.message).toContain('/nonexistent/strait-node');
    expect([0, 1, 2].map(cloexec)).toEqual(before);
  });

  it('refuses arguments that are not a path and a list of strings', () => {
    expect(() => execv('/bin/true', 'x')).toThrow(TypeError);
    expect(() => execv('/bin/true', ['x', 1])).toThrow(/strings only/);
    expect(() => execv('/bin/true', [])).toThrow(/argv\[0\]/);
  });
});
