import { boltCodec, looksLikeBolt } from './bolt/codec.js';
import { dubboCodec, looksLikeDubbo } from './dubbo/codec.js';
import { exampleCodec, looksLikeExample } from './example/codec.js';
import { looksLikeThrift, thriftCodec } from './thrift/codec.js';
import type { RpcCodec } from './types.js';

/**
 * Every RPC protocol Strait speaks. A codec plugs in with one entry here: its codec object and
 * a matcher that recognises its first bytes (for `protocol: AUTO`).
 */
interface ProtocolEntry {
  readonly codec: RpcCodec;
  /** true = this protocol, false = not it, null = need more bytes to tell. */
  readonly matches: (firstBytes: Buffer) => boolean | null;
}

const PROTOCOLS: readonly ProtocolEntry[] = [
  { codec: dubboCodec, matches: looksLikeDubbo },
  { codec: boltCodec, matches: looksLikeBolt },
  { codec: thriftCodec, matches: looksLikeThrift },
  { codec: exampleCodec, matches: looksLikeExample },
];

const byName = new Map(PROTOCOLS.map((p) => [p.codec.name, p.codec]));

export function getCodec(name: string): RpcCodec | undefined {
  return byName.get(name.toLowerCase());
}

export function protocolNames(): string[] {
  return [...byName.keys()];
}

/**
 * Picks the protocol of a connection from its first bytes: a codec, `null` while the bytes so
 * far could still be more than one protocol, or `undefined` when no protocol matches.
 */
export function detectProtocol(firstBytes: Buffer): RpcCodec | null | undefined {
  let undecided = false;
  for (const p of PROTOCOLS) {
    const m = p.matches(firstBytes);
    if (m === true) return p.codec;
    if (m === null) undecided = true;
  }
  return undecided ? null : undefined;
}

export type { RpcCodec } from './types.js';
