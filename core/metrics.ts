// Prometheus metrics (prom-client). Two kinds of registry:
// - `registry`, one per process: parts that own their own counters (SIP, p2p) register there and
//   set them directly, so they need no handle passed through the node;
// - one registry per HTTP API (`apiMetrics`): gauges read from that node's chain at scrape time,
//   so several nodes in one test process never mix their heights.
// GET /metrics serves both.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Counters and gauges the SIP registrar and proxy set (see sip/). */
export const sipMetrics = {
  /** contacts currently registered at this node (set it, do not inc, so restarts never drift) */
  registrations: new Gauge({ name: 'dots_sip_registrations', help: 'SIP contacts currently registered at this node.', registers: [registry] }),
  /** REGISTER requests answered, by result: ok, auth-challenge, forbidden, bad-request, error */
  registerRequests: new Counter({
    name: 'dots_sip_register_requests_total',
    help: 'SIP REGISTER requests answered, by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  }),
  /** calls (INVITE transactions) this node routed, by result: answered, busy, no-answer, failed, not-found */
  calls: new Counter({ name: 'dots_sip_calls_total', help: 'SIP calls routed by this node, by result.', labelNames: ['result'] as const, registers: [registry] }),
  activeCalls: new Gauge({ name: 'dots_sip_active_calls', help: 'SIP calls in progress through this node.', registers: [registry] }),
  messages: new Counter({ name: 'dots_sip_messages_total', help: 'SIP MESSAGE requests routed, by result.', labelNames: ['result'] as const, registers: [registry] }),
  /** OPTIONS keepalives sent to registered contacts, by result: ok, timeout */
  keepalives: new Counter({ name: 'dots_sip_keepalives_total', help: 'SIP OPTIONS keepalives to registered contacts, by result.', labelNames: ['result'] as const, registers: [registry] }),
};

/** What the per-API gauges read at scrape time. */
export interface MetricsSource {
  height(): number;
  tipTime(): number;
  difficulty(): number;
  networkHashrate(): number;
  hashrate(): number;
  peers(): number;
  pending(): number;
  syncing(): boolean;
  sseClients(): number;
}

export interface ApiMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route'>;
  blocksConnected: Counter;
  blocksDisconnected: Counter;
  reorgs: Counter;
  /** Prometheus text of this API's registry followed by the process-wide one. */
  text(): Promise<string>;
}

function gauge(reg: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [reg],
    collect() {
      this.set(read());
    },
  });
}

export function apiMetrics(src: MetricsSource): ApiMetrics {
  const reg = new Registry();
  // Names kept from the first hand-written /metrics, so existing dashboards keep working.
  gauge(reg, 'dots_height', 'Height of the best chain.', src.height);
  gauge(reg, 'dots_pending_records', 'Records in the pending pool.', src.pending);
  gauge(reg, 'dots_peers', 'Connected peers.', src.peers);
  gauge(reg, 'dots_hashrate', "This node's hashes per second (0 when not mining).", src.hashrate);
  gauge(reg, 'dots_network_hashrate', 'Network hashes per second estimated from the work and times of recent blocks.', src.networkHashrate);
  gauge(reg, 'dots_difficulty', 'Difficulty of the tip: its work relative to a block at the proof-of-work limit.', src.difficulty);
  gauge(reg, 'dots_tip_timestamp_seconds', 'Header time of the best block.', src.tipTime);
  gauge(reg, 'dots_syncing', '1 while the node is syncing the chain from peers.', () => (src.syncing() ? 1 : 0));
  gauge(reg, 'dots_explorer_sse_clients', 'Clients connected to the live event stream.', src.sseClients);
  const requests = new Counter({
    name: 'dots_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [reg],
  });
  const latency = new Histogram({
    name: 'dots_http_request_duration_seconds',
    help: 'HTTP request latency by method and route pattern.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [reg],
  });
  const blocksConnected = new Counter({ name: 'dots_blocks_connected_total', help: 'Blocks connected to the main chain.', registers: [reg] });
  const blocksDisconnected = new Counter({ name: 'dots_blocks_disconnected_total', help: 'Blocks disconnected by reorganisations.', registers: [reg] });
  const reorgs = new Counter({ name: 'dots_reorgs_total', help: 'Reorganisations (tip changes that disconnected blocks).', registers: [reg] });
  return {
    registry: reg,
    requests,
    latency,
    blocksConnected,
    blocksDisconnected,
    reorgs,
    async text() {
      return (await reg.metrics()) + (await registry.metrics());
    },
  };
}
