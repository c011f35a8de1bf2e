export * from './types.js';
export * from './decoder.js';
export * from './body.js';
export * from './encoder.js';
