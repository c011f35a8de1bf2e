import type { IoEngine } from './engine.js';
import { NativeEngine } from './native-engine.js';
import { NodeEngine } from './node-engine.js';

export type EngineName = 'native' | 'node';
export const ENGINE_NAMES: readonly EngineName[] = ['native', 'node'];

export function createEngine(name: EngineName): IoEngine {
  return name === 'native' ? new NativeEngine() : new NodeEngine();
}

export * from './engine.js';
