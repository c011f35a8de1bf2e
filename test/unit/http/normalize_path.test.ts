// normalize_path: the canonical path Envoy's normalizer (Chromium's path canonicalizer) makes,
// case by case: dot segments, %2e, backslashes, unreserved escapes decoded, others kept, bytes
// that may not appear literally escaped, %00 refused, the query untouched.
import { describe, expect, it } from 'vitest';
import { normalizePath, pathRedirect, preparePath, type EscapedSlashesAction } from '../../../src/filters/network/http_connection_manager/normalize_path.js';

describe('normalizePath', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a//b', '/a//b'], // merge_slashes is separate
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/../a', '/a'],
    ['/../../a/..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/public/../admin/x', '/admin/x'],
    ['/a/%2e%2E/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2e/b', '/a/b'],
    ['/a\\b', '/a/b'],
    ['/a\\..\\b', '/b'],
    ['/a/..\\b', '/b'],
    ['/a..b', '/a..b'],
    ['/.hidden/x', '/.hidden/x'],
    ['/a/...', '/a/...'],
    ['/a/..b/c', '/a/..b/c'],
    ['/%61dmin', '/admin'],
    ['/%41%42%7e%2D%5f%30', '/AB~-_0'],
    ['/a%2fb', '/a%2fb'], // escaped slashes kept (KEEP_UNCHANGED), hex case too
    ['/a%2F..%2Fb', '/a%2F..%2Fb'],
    ['/%3A%40', '/%3A%40'],
    ['/%zz', '/%zz'],
    ['/%', '/%'],
    ['/%%34%31', '/%2541'], // no '%41' left for the next parser to decode
    ['/%%341', '/%2541'],
    ['/a|b{c}^`"<>', '/a%7Cb%7Bc%7D%5E%60%22%3C%3E'],
    ['/caf\xe9', '/caf%E9'],
    ['/a/../b?x=/../y&z=%41', '/b?x=/../y&z=%41'],
    ['/a?../b', '/a?../b'],
  ])('%s → %s', (input, want) => {
    expect(normalizePath(input)).toBe(want);
  });

  it('returns the same string when the path is canonical already (the common request)', () => {
    const s = '/api/v1/users/12345?fields=a,b';
    expect(normalizePath(s)).toBe(s);
  });

  it.each(['/a%00', '/%00/x', '/a/%00?q'])('refuses %s', (input) => {
    expect(normalizePath(input)).toBeNull();
  });
});

describe('preparePath: escaped slashes, normalize_path, merge_slashes in Envoy\'s order', () => {
  const o = (escapedSlashes: EscapedSlashesAction, normalize = false, merge = false) => ({ normalizePath: normalize, mergeSlashes: merge, escapedSlashes });

  it.each([
    ['//a///b//c?x=//y', o('KEEP_UNCHANGED', false, true), '/a/b/c?x=//y', false],
    ['/a%2Fb%2fc%5Cd?q=%2F', o('UNESCAPE_AND_FORWARD'), '/a/b/c\\d?q=%2F', false],
    // Unescaped first, then normalized: the backslash becomes a slash and the dot segment goes.
    ['/a%2F..%5Cb', o('UNESCAPE_AND_FORWARD', true), '/b', false],
    // Merged after normalizing, so an escape cannot hide a double slash.
    ['/a%2F%2Fb', o('UNESCAPE_AND_FORWARD', true, true), '/a/b', false],
    ['/a%2Fb', o('UNESCAPE_AND_REDIRECT'), '/a/b', true],
    ['/a/b', o('UNESCAPE_AND_REDIRECT'), '/a/b', false],
    ['/a%2Fb', o('KEEP_UNCHANGED', true), '/a%2Fb', false],
  ] as const)('%s → %s', (input, opts, want, redirect) => {
    expect(preparePath(input, opts)).toBe(want);
    expect(pathRedirect).toBe(redirect);
  });

  it('refuses an escaped slash with REJECT_REQUEST, and %00 when normalizing', () => {
    expect(preparePath('/a%2fb', o('REJECT_REQUEST'))).toBeNull();
    expect(preparePath('/a/b?q=%2F', o('REJECT_REQUEST'))).toBe('/a/b?q=%2F');
    expect(preparePath('/a%00', o('KEEP_UNCHANGED', true, true))).toBeNull();
  });
});
