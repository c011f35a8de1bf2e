import { describe, expect, it } from 'vitest';
import { EdfScheduler } from '../../../src/upstream/lb/edf.js';

function run(s: EdfScheduler, n: number): number[] {
  return Array.from({ length: n }, () => s.pick());
}

describe('EDF scheduler', () => {
  it('gives every entry exactly its share of each full cycle', () => {
    const w = [1, 2, 3, 4];
    const s = new EdfScheduler((i) => w[i]!);
    s.reset(w.length, 0);
    const seq = run(s, 10 * 50);
    for (let c = 0; c < 50; c++) {
      const cycle = seq.slice(c * 10, c * 10 + 10);
      expect(w.map((_, i) => cycle.filter((e) => e === i).length)).toEqual(w);
    }
  });

  it('is smooth: in every window of picks each entry gets its share to within two picks', () => {
    // A burst scheduler would serve [5, 5, 1] as 0,0,0,0,0,1,1,1,1,1,2 — five in a row where
    // 2.3 are due; EDF interleaves the two heavy entries.
    for (const w of [
      [5, 5, 1],
      [8, 1, 1],
      [1, 2, 3, 4],
      [10, 1, 1, 1, 7],
    ]) {
      const total = w.reduce((a, b) => a + b, 0);
      const s = new EdfScheduler((i) => w[i]!);
      s.reset(w.length, 0);
      const seq = run(s, total * 20);
      let worst = 0;
      for (let size = 1; size <= 2 * total; size++) {
        for (let start = 0; start + size <= seq.length; start += 3) {
          const win = seq.slice(start, start + size);
          for (let i = 0; i < w.length; i++) {
            const got = win.filter((e) => e === i).length;
            worst = Math.max(worst, Math.abs(got - (size * w[i]!) / total));
          }
        }
      }
      expect(worst, `weights ${w}`).toBeLessThanOrEqual(2);
    }
  });

  it('a light entry never waits more than one cycle', () => {
    const w = [8, 1, 1];
    const s = new EdfScheduler((i) => w[i]!);
    s.reset(3, 0);
    const seq = run(s, 1000);
    const last = [-1, -1, -1];
    let maxGap = 0;
    seq.forEach((e, k) => {
      if (e !== 0 && last[e]! >= 0) maxGap = Math.max(maxGap, k - last[e]!);
      last[e] = k;
    });
    expect(maxGap).toBe(10);
  });

  it('breaks ties in queue order, so equal weights rotate', () => {
    const s = new EdfScheduler(() => 1);
    s.reset(3, 0);
    expect(run(s, 9)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  it('a schedule built with P picks continues exactly as one that made P picks', () => {
    // Weights with no common multiples, so no two deadlines tie: tie order is the one thing the
    // closed form may settle differently (Envoy's createWithPicks says the same).
    const w = [1, Math.SQRT2, Math.PI, Math.E, Math.sqrt(53)];
    for (const p of [0, 1, 4, 17, 18, 100, 12345, 54321, 999_983]) {
      const walked = new EdfScheduler((i) => w[i]!);
      walked.reset(w.length, 0);
      run(walked, p);
      const jumped = new EdfScheduler((i) => w[i]!);
      jumped.reset(w.length, p);
      expect(run(jumped, 60), `picks=${p}`).toEqual(run(walked, 60));
    }
  });

  it('asks for the weight again at each pick, so a weight change applies from the next turn', () => {
    const w = [1, 1];
    const s = new EdfScheduler((i) => w[i]!);
    s.reset(2, 0);
    run(s, 2);
    w[1] = 9; // entry 1 becomes 9× heavier
    const seq = run(s, 102);
    expect(seq.filter((e) => e === 1).length).toBeGreaterThan(85);
  });

  it('keeps exact shares across a very long run (the clock is rebased)', () => {
    const w = [1000, 3000];
    const s = new EdfScheduler((i) => w[i]!);
    s.reset(2, 0);
    // Enough picks for the clock to pass the rebase point more than once.
    run(s, 4000 * 2_100);
    const seq = run(s, 4000);
    expect(seq.filter((e) => e === 1).length).toBe(3000);
  });

  it('an empty schedule picks nothing', () => {
    const s = new EdfScheduler(() => 1);
    s.reset(0, 5);
    expect(s.pick()).toBe(-1);
  });
});
