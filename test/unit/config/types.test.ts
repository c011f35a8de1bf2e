import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { lookupType } from '../../../src/config/index.js';
import { REPO } from '../../helpers/strait.js';

/**
 * src/config/types.ts is written by hand: check that every property of each interface tagged
 * `@proto <message>` is a field of that message, so a typo there cannot hide an unread setting.
 */
it('types.ts names only real proto fields', () => {
  const src = fs.readFileSync(path.join(REPO, 'src/config/types.ts'), 'utf8');
  const blocks = [...src.matchAll(/@proto ([\w.]+)[^\n]*\*\/\nexport interface (\w+) \{\n([\s\S]*?)\n\}/g)];
  expect(blocks.length).toBeGreaterThan(20);
  const problems: string[] = [];
  for (const [, protoName, iface, body] of blocks) {
    const type = lookupType(protoName!);
    if (!type) {
      problems.push(`${iface}: no message ${protoName}`);
      continue;
    }
    // Top-level properties only: two-space indent, `name?:`.
    for (const [, prop] of body!.matchAll(/^ {2}'?([a-z_@][\w]*)'?\??:/gm)) {
      if (!type.fields[prop!]) problems.push(`${iface}.${prop} is not a field of ${protoName}`);
    }
  }
  expect(problems).toEqual([]);
});
