// What a name costs to claim or renew. Names are scarce where they are short: a one-digit
// country prefix covers a billion numbers and a three-letter domain is one of few, so the price
// grows fourfold for each digit or character below a length that ordinary names reach. The fee
// is burned (taken from the claimant's balance and paid to nobody): paid to the miner, it would
// make names free for whoever mines, the very party that could otherwise take them in bulk.
import { domainOf, ownDomainPrefix } from './records.ts';

/** E.164 names of at least this many digits pay the base price (a whole number in most plans) */
const FULL_NUMBER_DIGITS = 11;
/** domains of at least this many characters pay the base price */
const FULL_DOMAIN_LENGTH = 6;
/** a user's address under a domain costs the base price divided by this */
const ADDRESS_DIVISOR = 10;

export type NameKind = 'address' | 'number' | 'domain' | 'own-domain';

export function nameKind(name: string): NameKind {
  if (domainOf(name) !== null) return 'address';
  if (name.startsWith('+')) return 'number';
  return ownDomainPrefix(name) !== null ? 'own-domain' : 'domain';
}

/**
 * The fee, in units, for claiming `name` or renewing it for one lifetime, at `base` units for an
 * ordinary name. Integers only: a multiplier of 4^k for k characters short, never above 4^10.
 */
export function nameFee(name: string, base: number): number {
  switch (nameKind(name)) {
    case 'address':
      return Math.floor(base / ADDRESS_DIVISOR);
    case 'own-domain':
      return base;
    case 'number':
      return base * 4 ** Math.min(10, Math.max(0, FULL_NUMBER_DIGITS - (name.length - 1)));
    case 'domain':
      return base * 4 ** Math.min(10, Math.max(0, FULL_DOMAIN_LENGTH - name.length));
  }
}

/**
 * The names whose owners decide whether `name` may be claimed, in the order their claims would
 * apply: an address's domain; a number's shorter prefixes from the shortest (a block before the
 * sub-blocks carved from it); none for a domain.
 */
export function rulersOf(name: string): string[] {
  const domain = domainOf(name);
  if (domain !== null) return [domain];
  if (!name.startsWith('+')) return [];
  const out: string[] = [];
  for (let len = 2; len < name.length; len++) out.push(name.slice(0, len));
  return out;
}
