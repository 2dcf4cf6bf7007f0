// The receipt side of a node, in this process, wired as node/node.ts wires it: a P2PNetwork
// (real libp2p on 127.0.0.1) over a chain and pool the caller opened, a ReceiptExchange charging
// offences in that network's scores, and a CallLog settling through it. For tests and benchmarks
// of receipts that need two or three such nodes without the SIP side.
import '../../p2p/polyfill.ts';
import { P2PNetwork } from '../../p2p/network.ts';
import { ReceiptExchange } from '../../p2p/receipts.ts';
import { CallLog, type ReceiptOutcome } from '../../telecom/calls.ts';
import { generateSecretKey, publicKeyOf } from '../../core/sig.ts';
import { addressOf } from '../../core/address.ts';
import { silentLogger, type Logger } from '../../core/log.ts';
import type { Chain } from '../../consensus/chain.ts';
import type { Mempool } from '../../core/mempool.ts';

export interface ReceiptNode {
  key: { secret: Uint8Array; pub: Uint8Array; address: Uint8Array };
  net: P2PNetwork;
  ex: ReceiptExchange;
  calls: CallLog;
  /** what became of each call the node originated, in order */
  outcomes: ReceiptOutcome[];
  /** stops in the node's order: call log, exchange, p2p (the chain is the caller's to close) */
  stop(): Promise<void>;
}

export async function startReceiptNode(o: {
  chain: Chain;
  pool: Mempool;
  dir: string;
  /** the exchange's and call log's logger (default silent) */
  log?: Logger;
  timeoutMs?: number;
  retryDelaysMs?: number[];
}): Promise<ReceiptNode> {
  const secret = generateSecretKey();
  const pub = publicKeyOf(secret);
  const key = { secret, pub, address: addressOf(pub) };
  const log = o.log ?? silentLogger;
  const net = new P2PNetwork(o.chain, o.pool, { port: 0, datadir: o.dir, log: silentLogger });
  await net.start();
  const ex = new ReceiptExchange({ params: o.chain.params, pool: o.pool, secret, log, ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }), penalize: (id, off, why) => net.penalize(id, off, why) });
  const outcomes: ReceiptOutcome[] = [];
  const calls = new CallLog({ chain: o.chain, pool: o.pool, secret, log, exchange: ex, ...(o.retryDelaysMs === undefined ? {} : { retryDelaysMs: o.retryDelaysMs }), onOutcome: (x) => outcomes.push(x) });
  return {
    key,
    net,
    ex,
    calls,
    outcomes,
    stop: async () => {
      calls.stop();
      await ex.stop();
      await net.stop();
    },
  };
}
