export { BOOTSTRAP_TYPE, decodeResource, loadBootstrapFile, parseBootstrapText, parseConfigText, type LoadedBootstrap, type LoadOptions } from './bootstrap.js';
export { fromJson, joinPath, newContext, parseDuration, toJsonValue, toProtobufObject, type DecodeContext } from './proto-json.js';
export { redact, REDACTED } from './redact.js';
export { compileRoot, DESCRIPTOR_PATH, getRoot, lookupType, typeFromUrl } from './registry.js';
export type * from './types.js';
export { durationMs } from './values.js';
export { decodeBootstrapOffThread, type DecodedBootstrap } from './load.js';
