// src/filters/network/http_connection_manager/idle_list.ts: one timer for a connection manager's
// idle HTTP/1 connections. Fake timers and a clock the test moves.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleList, type IdleMember } from '../../../src/filters/network/http_connection_manager/idle_list.js';

let clock = 0;
const fired: string[] = [];

function member(name: string, onIdle?: () => void): IdleMember & { name: string } {
  return {
    name,
    idlePrev: null,
    idleNext: null,
    idleLinked: false,
    idleSince: 0,
    onIdle: onIdle ?? (() => fired.push(name)),
  };
}

/** Moves the test's clock and the fake timers together. */
function advance(ms: number): void {
  clock += ms;
  vi.advanceTimersByTime(ms);
}

beforeEach(() => {
  vi.useFakeTimers();
  clock = 1000;
  fired.length = 0;
});
afterEach(() => vi.useRealTimers());

describe('IdleList', () => {
  it('times members out in the order they went idle, each after the whole timeout', () => {
    const l = new IdleList(100, () => clock);
    const a = member('a');
    const b = member('b');
    l.add(a, clock);
    advance(30);
    l.add(b, clock);
    advance(69);
    expect(fired).toEqual([]);
    advance(1);
    expect(fired).toEqual(['a']);
    expect(a.idleLinked).toBe(false);
    advance(29);
    expect(fired).toEqual(['a']);
    advance(1);
    expect(fired).toEqual(['a', 'b']);
    expect(l.size).toBe(0);
  });

  it('forgets a member that leaves, and restarts the timeout of one added again', () => {
    const l = new IdleList(100, () => clock);
    const a = member('a');
    const b = member('b');
    const c = member('c');
    l.add(a, clock);
    l.add(b, clock);
    l.add(c, clock);
    advance(50);
    l.remove(a); // a request started
    l.add(b, clock); // b went idle again: its timeout starts over, behind c
    expect(l.size).toBe(2);
    advance(50);
    expect(fired).toEqual(['c']);
    advance(49);
    expect(fired).toEqual(['c']);
    advance(1);
    expect(fired).toEqual(['c', 'b']);
    l.remove(b); // not in the list any more: nothing happens
    expect(l.size).toBe(0);
  });

  it('keeps timing the others out when one member\'s onIdle throws', () => {
    const l = new IdleList(100, () => clock);
    l.add(
      member('bad', () => {
        throw new Error('boom');
      }),
      clock,
    );
    l.add(member('good'), clock);
    advance(20);
    l.add(member('later'), clock);
    expect(() => advance(100)).toThrow('boom');
    // The timer was rescheduled for what was left, whatever the throw.
    advance(100);
    expect(fired).toEqual(['good', 'later']);
  });
});
