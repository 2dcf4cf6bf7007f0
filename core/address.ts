// Account addresses: 20 bytes of a tagged hash of the compressed public key, shown as bech32m
// with a per-network prefix, so a typo or an address of another network is caught on input.
import { bech32m } from '@scure/base';
import { truncatedTaggedHash, toHex } from './hash.ts';
import { UserError } from './errors.ts';

export const ADDRESS_BYTES = 20;

export function addressOf(pubkey: Uint8Array): Uint8Array {
  return truncatedTaggedHash('DOTS/address', ADDRESS_BYTES, pubkey);
}

/** A node's id is the address of its key, in hex: short, fixed-size, and what bindings name. */
export function nodeIdOf(pubkey: Uint8Array): Uint8Array {
  return addressOf(pubkey);
}

export function encodeAddress(hrp: string, addr: Uint8Array): string {
  return bech32m.encode(hrp, bech32m.toWords(addr));
}

export function decodeAddress(hrp: string, s: string): Uint8Array {
  let dec: { prefix: string; words: number[] };
  try {
    dec = bech32m.decode(s.toLowerCase() as `${string}1${string}`);
  } catch {
    throw new UserError(`"${s}" is not a valid address (bad checksum or characters)`);
  }
  if (dec.prefix !== hrp) throw new UserError(`address "${s}" belongs to another network (prefix ${dec.prefix}, expected ${hrp})`);
  const bytes = bech32m.fromWords(dec.words);
  if (bytes.length !== ADDRESS_BYTES) throw new UserError(`address "${s}" has the wrong length`);
  return bytes;
}

export function nodeIdHex(pubkey: Uint8Array): string {
  return toHex(nodeIdOf(pubkey));
}
