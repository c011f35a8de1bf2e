import { describe, expect, it } from 'vitest';
import { originFormOf } from '../../../src/protocols/http1/absolute_form.js';

describe('absolute-form request targets', () => {
  it.each([
    ['http://a.example/x/y?z=1', 'a.example', '/x/y?z=1'],
    ['http://a.example:8080', 'a.example:8080', '/'],
    ['HTTPS://A.example?q', 'A.example', '/?q'],
    ['http://[::1]:81/p', '[::1]:81', '/p'],
    ['http://a/', 'a', '/'],
  ])('%s is Host %s, path %s', (target, authority, path) => {
    expect(originFormOf(target)).toEqual({ authority, path });
  });

  it.each(['/x', '*', 'a.example:443', 'ftp://a/x', 'http://', 'http:///x', 'http://u@a/x', 'http://u:p@a', 'http://a#f', 'http:/a/x', 'httpx://a/'])(
    'rejects %s',
    (target) => {
      expect(originFormOf(target)).toBeNull();
    },
  );
});
