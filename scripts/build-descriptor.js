// Precompiles the Envoy v3 API protos (and the project's own, under proto/) into one JSON
// descriptor that protobufjs reloads faster than it parses .proto files; getRoot() uses it while
// it is newer than package-lock.json and proto/. Run after tsc: file discovery and compilation
// are the registry's own (dist/config/registry.js, proto_files.js), so both always agree.
import fs from 'node:fs';
import path from 'node:path';
import { compileRoot, DESCRIPTOR_PATH } from '../dist/config/registry.js';

const t0 = performance.now();
const root = compileRoot();
fs.mkdirSync(path.dirname(DESCRIPTOR_PATH), { recursive: true });
const tmp = `${DESCRIPTOR_PATH}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify(root.toJSON()));
fs.renameSync(tmp, DESCRIPTOR_PATH); // atomic: a process starting meanwhile never reads half a file
const kib = (fs.statSync(DESCRIPTOR_PATH).size / 1024).toFixed(0);
console.log(`descriptor: ${path.relative(process.cwd(), DESCRIPTOR_PATH)} (${kib} KiB, ${(performance.now() - t0).toFixed(0)} ms)`);
