// The LevelDB key space: the one place keys are built (core/store.ts alone uses it). Keys are
// strings with a one-letter prefix:
//   B<hash>  block bytes               H<hash>  index entry [header, height, work hex, status]
//   U<hash>  undo data of a connected  S<key>   state entry (core/state.ts keys: n:, b:, d:, a:,
//            main-chain block                   c:, r:)
//   R<id>    [height, position] of a record on the main chain: the first 12 bytes of the id in
//            base64url (16 characters), the height, not the block's 32-byte hash (a record's
//            index entry went from 102 bytes to about 21). Readers compare the whole id with the
//            record found there: an id sharing another's 96 bits takes about 2^96 tries to make,
//            and would only hide the other from lookups by id, never from the chain
//   T        main-chain tip hash        V        [store version, network, genesis hash]
//   P<id>    a pending record's bytes (the pool, kept across restarts)
// Hashes are display hex (byte-reversed, as block explorers show them); record() takes a record's
// id bytes (at least 12), and R keys hold them in base64url.

import { toBase64url } from './hash.ts';

export const layout = {
  block: (hashHex: string): string => 'B' + hashHex,
  index: (hashHex: string): string => 'H' + hashHex,
  undo: (hashHex: string): string => 'U' + hashHex,
  state: (stateKey: string): string => 'S' + stateKey,
  record: (id: Uint8Array): string => 'R' + toBase64url(id, 12),
  pending: (idHex: string): string => 'P' + idHex,
  tip: 'T',
  meta: 'V',
  /** prefixes of the keys scanned at start-up */
  indexPrefix: 'H',
  statePrefix: 'S',
  pendingPrefix: 'P',
} as const;
