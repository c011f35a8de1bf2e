// In-process tests call the synchronous config parsers (buildStaticConfig, factories, route
// tables) directly, without the CLI's preload step: load every extension module up front, as the
// xDS path does. What the CLI loads for a given config is checked end to end in
// test/integration/lazy_modules.test.ts.
import { loadAllExtensions } from '../../src/config/preload.js';

await loadAllExtensions();
