// Precompiles the Envoy v3 API protos (and the project's own) into one JSON descriptor that
// protobufjs reloads faster than it parses .proto files. Run after tsc (it uses dist/).
import fs from 'node:fs';
import path from 'node:path';
import { compileRoot, DESCRIPTOR_PATH } from '../dist/config/registry.js';

const t0 = performance.now();
const root = compileRoot();
fs.mkdirSync(path.dirname(DESCRIPTOR_PATH), { recursive: true });
fs.writeFileSync(DESCRIPTOR_PATH, JSON.stringify(root.toJSON()));
console.log(`descriptor: ${path.relative(process.cwd(), DESCRIPTOR_PATH)} (${(fs.statSync(DESCRIPTOR_PATH).size / 1024).toFixed(0)} KiB, ${(performance.now() - t0).toFixed(0)} ms)`);
