// The genesis block of each network, rebuilt from its parameters at start-up. `npm run genesis`
// (tools/genesis.ts) searches the nonces recorded in params.ts.
import { makeBlock, type Block, type Header } from '../core/block.ts';
import { merkleRoot } from '../core/merkle.ts';
import { makeRec, Kind } from '../core/records.ts';
import type { NetworkParams } from './params.ts';

export function genesisHeader(p: NetworkParams, nonce = p.genesis.nonce): { header: Header; block: Block } {
  const coinbase = makeRec({ kind: Kind.Coinbase, height: 0, rewardAddress: new Uint8Array(20), amount: 0, extraNonce: new Uint8Array(0), note: p.genesis.note });
  const header: Header = { version: 1, prev: new Uint8Array(32), merkleRoot: merkleRoot([coinbase.id]), time: p.genesis.time, bits: p.powLimitBits, nonce };
  return { header, block: makeBlock(header, [coinbase]) };
}

export function genesisBlock(p: NetworkParams): Block {
  return genesisHeader(p).block;
}
