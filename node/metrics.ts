// Prometheus metrics (prom-client). Two kinds of registry:
// - `registry`, one per process: parts that own their own counters (SIP, p2p) register there and
//   set them directly, so they need no handle passed through the node;
// - one registry per HTTP API (`apiMetrics`): gauges read from that node's chain at scrape time,
//   so several nodes in one test process never mix their heights.
// GET /metrics serves both.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/**
 * What the SIP service counts, read at scrape time: the SIP hot path only bumps plain integers
 * (a prom-client call per REGISTER would cost more than the counting is worth).
 */
export interface SipStatsSource {
  registrations(): number;
  /** REGISTER answers by result: ok, challenged, refused, error */
  registerRequests(): Record<string, number>;
  /** INVITEs routed, by result: answered, failed, cancelled, not-found, offline, shed */
  calls(): Record<string, number>;
  activeCalls(): number;
  /** MESSAGEs routed, by result: delivered, failed */
  messages(): Record<string, number>;
  /** keepalive pings by result: sent, failed */
  keepalives(): Record<string, number>;
  /** the trunk's servers that answered their last check (0 without a trunk) */
  trunkServersUp(): number;
  /** checks of users behind the trunk, by result: online, offline */
  trunkChecks(): Record<string, number>;
  /** UDP datagrams by fate: received, sent, shed (over its source's share of the queue, dropped unread) */
  datagrams(): Record<string, number>;
}

let sipSource: SipStatsSource | null = null;

/** The node's SIP service, read by the dots_sip_* metrics (null: the metrics keep what was set by hand). */
export function setSipStatsSource(s: SipStatsSource | null): void {
  sipSource = s;
}

/** A gauge read from the SIP source at scrape time. */
function sipGauge(name: string, help: string, get: (s: SipStatsSource) => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      if (sipSource !== null) this.set(get(sipSource));
    },
  });
}

/** A counter by result, read from the SIP source at scrape time (kept as set by hand without one). */
function sipCounter(name: string, help: string, get: (s: SipStatsSource) => Record<string, number>): Counter<'result'> {
  return new Counter({
    name,
    help,
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      if (sipSource === null) return;
      this.reset();
      for (const [result, n] of Object.entries(get(sipSource))) this.inc({ result }, n);
    },
  });
}

/** Counters and gauges of the SIP registrar and proxy (see sip/), filled from the source at scrape time. */
export const sipMetrics = {
  registrations: sipGauge('dots_sip_registrations', 'SIP contacts currently registered at this node.', (s) => s.registrations()),
  registerRequests: sipCounter('dots_sip_register_requests_total', 'SIP REGISTER requests answered, by result.', (s) => s.registerRequests()),
  calls: sipCounter('dots_sip_calls_total', 'SIP calls routed by this node, by result.', (s) => s.calls()),
  activeCalls: sipGauge('dots_sip_active_calls', 'SIP calls in progress through this node (answered, not yet ended).', (s) => s.activeCalls()),
  messages: sipCounter('dots_sip_messages_total', 'SIP MESSAGE requests routed, by result.', (s) => s.messages()),
  keepalives: sipCounter('dots_sip_keepalives_total', 'SIP OPTIONS keepalives to registered contacts, by result.', (s) => s.keepalives()),
  trunkServersUp: sipGauge('dots_sip_trunk_servers_up', "Servers behind the trunk (--trunk) that answered their last check.", (s) => s.trunkServersUp()),
  trunkChecks: sipCounter('dots_sip_trunk_checks_total', 'OPTIONS checks of the users behind the trunk, by result.', (s) => s.trunkChecks()),
  datagrams: sipCounter('dots_sip_datagrams_total', 'SIP UDP datagrams by result: received, sent, shed (dropped unread: its source was over its share).', (s) => s.datagrams()),
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
