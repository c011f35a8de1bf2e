import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { newEntry, parseAccessLogs } from '../../../src/observability/access_log/index.js';
import { compileEntryFilter } from '../../../src/observability/access_log/filter.js';

function compile(f: Record<string, unknown>) {
  const errors: FieldError[] = [];
  const fn = compileEntryFilter(f, 'access_log[0].filter', errors);
  return { fn, errors };
}

function entry(code: number, durationMs: number, flags = '', headers: Record<string, string> = {}) {
  const e = newEntry(0);
  e.responseCode = code;
  e.durationMs = durationMs;
  e.responseFlags = flags;
  e.requestHeader = (n) => headers[n];
  return e;
}

describe('access log filters', () => {
  it('status_code_filter and duration_filter compare as Envoy does (EQ default, GE, LE)', () => {
    const ge = compile({ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'k' } } } }).fn!;
    expect([ge(entry(200, 0)), ge(entry(500, 0)), ge(entry(503, 0))]).toEqual([false, true, true]);
    const eq = compile({ status_code_filter: { comparison: { value: { default_value: 404 } } } }).fn!;
    expect([eq(entry(404, 0)), eq(entry(200, 0))]).toEqual([true, false]);
    const slow = compile({ duration_filter: { comparison: { op: 'LE', value: { default_value: 10 } } } }).fn!;
    expect([slow(entry(200, 9.6)), slow(entry(200, 11))]).toEqual([true, false]);
  });

  it('and/or/header/response_flag filters combine', () => {
    const f = compile({
      or_filter: {
        filters: [
          { response_flag_filter: { flags: ['UF', 'UO'] } },
          { and_filter: { filters: [{ header_filter: { header: { name: 'x-debug', present_match: true } } }, { status_code_filter: { comparison: { op: 'GE', value: { default_value: 200 } } } }] } },
        ],
      },
    }).fn!;
    expect(f(entry(503, 0, 'URX,UF'))).toBe(true);
    expect(f(entry(503, 0, 'NR'))).toBe(false);
    expect(f(entry(200, 0, '', { 'x-debug': '1' }))).toBe(true);
    expect(f(entry(200, 0))).toBe(false);
    const anyFlag = compile({ response_flag_filter: {} }).fn!;
    expect([anyFlag(entry(200, 0)), anyFlag(entry(504, 0, 'UT'))]).toEqual([false, true]);
  });

  it('runtime_filter samples its share', () => {
    const none = compile({ runtime_filter: { runtime_key: 'x', percent_sampled: { numerator: 0 } } }).fn!;
    const all = compile({ runtime_filter: { runtime_key: 'x', percent_sampled: { numerator: 100, denominator: 'HUNDRED' } } }).fn!;
    const e = entry(200, 0);
    let n = 0;
    let m = 0;
    for (let i = 0; i < 200; i++) {
      if (none(e)) n++;
      if (all(e)) m++;
    }
    expect([n, m]).toEqual([0, 200]);
  });

  it('refuses what it cannot evaluate, naming the field path', () => {
    expect(compile({ traceable_filter: {} }).errors[0]!.path).toBe('access_log[0].filter.traceable_filter');
    expect(compile({ response_flag_filter: { flags: ['XX'] } }).errors[0]).toEqual({ path: 'access_log[0].filter.response_flag_filter.flags', message: 'unknown response flag(s) XX' });
    expect(compile({ status_code_filter: { comparison: { op: 'GT', value: { default_value: 1 } } } }).errors[0]!.path).toBe('access_log[0].filter.status_code_filter.comparison.op');
    const errors: FieldError[] = [];
    const specs = parseAccessLogs(
      [{ name: 'x', filter: { grpc_status_filter: {} }, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' } }],
      'hcm.access_log',
      errors,
      [],
    );
    expect(specs).toHaveLength(1);
    expect(errors.map((e) => e.path)).toEqual(['hcm.access_log[0].filter.grpc_status_filter']);
  });
});
