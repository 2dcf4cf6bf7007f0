// The DOTS explorer: one page, hash routes (#/block/..., #/name/...), data from the node's JSON
// API only, live updates from GET /api/events. Everything the node sends is put into the page as
// text nodes, never as HTML, so a record carrying markup stays text.
import { chart } from './chart.js';
import { verifyRecord, blockHashHex, hexToBytes, addressOf, encodeAddress, bytesToHex, sha256Source } from './verify.js';

const PREFIXES = { mainnet: 'dots', testnet: 'tdots', devnet: 'ddots', regtest: 'rdots' };
const COIN = 100_000_000;
const view = document.getElementById('view');
const state = { status: null, prefix: 'dots', current: null, live: 'connecting' };

// ---------------------------------------------------------------- DOM and formatting helpers

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const short = (s, head = 10, tail = 6) => (s.length > head + tail + 1 ? `${s.slice(0, head)}…${s.slice(-tail)}` : s);
const enc = encodeURIComponent;
const hrefOf = {
  block: (id) => `#/block/${enc(id)}`,
  record: (id) => `#/record/${enc(id)}`,
  name: (n) => `#/name/${enc(n)}`,
  node: (id) => `#/node/${enc(id)}`,
  address: (a) => `#/address/${enc(a)}`,
};
const link = (kind, id, text, cls = 'mono') => h('a', { href: hrefOf[kind](id), class: cls, title: id }, text ?? id);
const shortLink = (kind, id) => link(kind, id, short(id));

function amount(units) {
  const neg = units < 0;
  const u = Math.abs(units);
  const frac = String(u % COIN).padStart(8, '0').replace(/0+$/, '');
  return `${neg ? '−' : ''}${Math.floor(u / COIN).toLocaleString('en-US')}${frac ? '.' + frac : ''} DOTS`;
}

function rate(hs) {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s'];
  let v = hs;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 2 : v < 100 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function num(v, digits = 4) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1e6) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toLocaleString('en-US');
}

function span(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function ago(unix) {
  const s = Math.round(Date.now() / 1000 - unix);
  // Header times may run a little ahead of this clock; only a real gap reads as future.
  return s < -5 ? `in ${span(-s)}` : `${span(Math.max(s, 0))} ago`;
}

const utc = (unix) => new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
/** A relative time that the page's ticker keeps fresh, the absolute time on hover. */
const when = (unix) => h('time', { 'data-time': unix, datetime: new Date(unix * 1000).toISOString(), title: utc(unix) }, ago(unix));
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(2)} MB`);
const bitsHex = (b) => `0x${b.toString(16).padStart(8, '0')}`;

function table(headers, rows, attrs = {}) {
  return h('div', { class: 'scroll' }, h('table', attrs, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows)));
}

function fields(pairs) {
  return h('dl', { class: 'fields' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

const section = (title, ...kids) => h('section', { class: 'card' }, h('h2', {}, title), ...kids);
const muted = (text) => h('p', { class: 'muted' }, text);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  let res;
  try {
    res = await fetch(`/api${path}`, { headers: { accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'the node does not answer');
  }
  let body = {};
  try {
    body = await res.json();
  } catch {
    // a non-JSON answer keeps the status text below
  }
  if (!res.ok) throw new ApiError(res.status, body.error ?? res.statusText);
  return body;
}

// ---------------------------------------------------------------- records

function addressLink(hex) {
  return shortLink('address', encodeAddress(state.prefix, hexToBytes(hex)));
}

/** A public key, followed by the address it controls (computed here, not asked of the node). */
function keyWithAddress(pubHex) {
  const out = h('span', {}, h('span', { class: 'mono', title: pubHex }, short(pubHex, 12, 8)), ' ');
  addressOf(hexToBytes(pubHex)).then((a) => out.append('→ ', addressLink(bytesToHex(a))));
  return out;
}

function summary(r) {
  switch (r.kind) {
    case 'coinbase':
      return `reward ${amount(r.amount)}`;
    case 'node-announce':
      return `node ${r.sipUris.join(', ') || short(r.pubkey)}`;
    case 'name-commit':
      return 'name commitment (the name stays hidden until its claim)';
    case 'name-claim':
      return `claim ${r.name}`;
    case 'name-renew':
      return `renew ${r.name}`;
    case 'name-transfer':
      return `transfer ${r.name}`;
    case 'name-delegate':
      return r.nodes.length > 0 ? `${r.name} served by ${r.nodes.length === 1 ? `node ${short(r.nodes[0])}` : `${r.nodes.length} nodes`}` : `revoke the serving nodes of ${r.name}`;
    case 'binding':
      return `${r.name} ${r.status === 1 ? 'online' : 'offline'} at node ${short(r.node)}`;
    case 'presence': {
      const on = r.entries.filter((e) => e.status === 1).length;
      return `${r.entries.length} presence change${r.entries.length === 1 ? '' : 's'} at node ${short(r.node)} (${on} online, ${r.entries.length - on} offline)`;
    }
    case 'transfer':
      return `${amount(r.amount)} to ${short(encodeAddress(state.prefix, hexToBytes(r.to)), 12, 6)}`;
    default:
      return r.kind;
  }
}

/** Node ids as links, in their order (a name's serving nodes). */
function nodeList(ids) {
  return ids.length === 0 ? h('span', { class: 'muted' }, 'none') : h('ol', { class: 'plain' }, ids.map((x) => h('li', {}, link('node', x))));
}

/** A presence record's changes: each name (by its number on the chain), online or offline, until when. */
function presenceEntries(list) {
  return h(
    'table',
    { class: 'entries' },
    h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'status'), h('th', {}, 'expires'))),
    h(
      'tbody',
      {},
      list.map((e) =>
        h(
          'tr',
          {},
          h('td', {}, e.name === null ? `#${e.ref}` : link('name', e.name, e.name, 'name')),
          h('td', {}, h('span', { class: `status ${e.status === 1 ? 'online' : 'offline'}` }, e.status === 1 ? 'online' : 'offline')),
          h('td', {}, e.status === 1 ? utc(e.expires) : ''),
        ),
      ),
    ),
  );
}

function recordFields(r) {
  const out = [['kind', h('span', { class: 'badge' }, r.kind)]];
  for (const [k, v] of Object.entries(r)) {
    if (k === 'kind' || k === 'id' || k === 'added') continue;
    let shown;
    if (k === 'name') shown = link('name', v, v, 'name');
    else if (k === 'node') shown = link('node', v);
    else if (k === 'nodes' || k === 'delegates') shown = nodeList(v);
    else if (k === 'pubkey' || k === 'newOwner') shown = keyWithAddress(v);
    else if (k === 'to' || k === 'rewardAddress') shown = addressLink(v);
    else if (k === 'amount' || k === 'fee') shown = amount(v);
    else if (k === 'expires') shown = h('span', {}, utc(v), ' (', when(v), ')');
    else if (k === 'entries' && r.kind === 'presence') shown = presenceEntries(v);
    else if (k === 'base' && r.kind === 'presence') shown = utc(v);
    else if (k === 'status' && r.kind === 'binding') shown = h('span', { class: `status ${v === 1 ? 'online' : 'offline'}` }, v === 1 ? 'online' : 'offline');
    else if (Array.isArray(v)) shown = v.length === 0 ? h('span', { class: 'muted' }, 'none') : h('ul', { class: 'plain' }, v.map((x) => h('li', { class: 'mono' }, x)));
    else if (typeof v === 'string' && /^[0-9a-f]{16,}$/.test(v)) shown = h('span', { class: 'mono wrap' }, v);
    else shown = String(v);
    out.push([k, shown]);
  }
  return out;
}

function recordRow(x, extra = []) {
  return h('tr', { 'data-id': x.id }, h('td', {}, shortLink('record', x.id)), h('td', {}, h('span', { class: 'badge' }, x.kind)), h('td', { class: 'summary' }, summary(x.record ?? x)), extra);
}

// ---------------------------------------------------------------- status and live updates

function setStatus(s) {
  state.status = s;
  state.prefix = PREFIXES[s.network] ?? state.prefix;
  document.getElementById('network').textContent = s.network;
  document.getElementById('tip-height').textContent = `#${s.height}`;
  document.getElementById('tip-height').href = hrefOf.block(s.tip);
  document.title = `DOTS ${s.network} · ${s.height}`;
  for (const el of document.querySelectorAll('[data-conf-height]')) {
    el.textContent = String(s.height - Number(el.getAttribute('data-conf-height')) + 1);
  }
}

function setLive(which) {
  state.live = which;
  const el = document.getElementById('live');
  el.dataset.state = which;
  el.title = { live: 'live: new blocks appear as they arrive', connecting: 'connecting to the live stream…', offline: 'live stream closed; retrying' }[which];
}

function connectLive() {
  const es = new EventSource('/api/events');
  let lost = false;
  es.addEventListener('hello', (e) => {
    setStatus(JSON.parse(e.data));
    setLive('live');
    // Events may have been missed while the stream was down: redraw what is on screen.
    if (lost) state.current?.onReconnect?.();
    lost = false;
  });
  es.addEventListener('tip', (e) => {
    const d = JSON.parse(e.data);
    setStatus(d);
    state.current?.onTip?.(d);
  });
  es.addEventListener('record', (e) => state.current?.onRecord?.(JSON.parse(e.data)));
  es.onerror = () => {
    lost = true;
    if (es.readyState === EventSource.CLOSED) {
      setLive('offline');
      setTimeout(connectLive, 10_000);
    } else setLive('connecting');
  };
}

setInterval(() => {
  for (const el of document.querySelectorAll('time[data-time]')) el.textContent = ago(Number(el.getAttribute('data-time')));
}, 5000);

function debounce(fn, ms) {
  let t = null;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

// ---------------------------------------------------------------- pages

function blockRow(b) {
  return h(
    'tr',
    { 'data-height': b.height, 'data-hash': b.hash },
    h('td', {}, link('block', b.hash, String(b.height), 'height')),
    h('td', {}, shortLink('block', b.hash)),
    h('td', {}, when(b.time)),
    h('td', { class: 'num' }, b.records),
    h('td', { class: 'num' }, bytes(b.size)),
  );
}

const blockHeaders = ['Height', 'Hash', 'Time', 'Records', 'Size'];

function statCard(id, label, value, sub) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', id }, value), sub ? h('div', { class: 'sub', id: `${id}-sub` }, sub) : null);
}

function chartCard(title, values, opts, current) {
  return h('figure', { class: 'card chart-card' }, h('figcaption', {}, h('span', {}, title), h('strong', {}, current)), chart(values, { ...opts, label: title }));
}

function chartsOf(stats) {
  const b = stats.blocks;
  const intervals = b.map((x) => x.interval);
  return [
    chartCard('Difficulty', b.map((x) => x.difficulty), {}, num(b.at(-1)?.difficulty)),
    chartCard('Hashrate (est.)', b.map((x) => x.hashrate), {}, rate(stats.networkHashrate)),
    chartCard('Block time', intervals.map((v) => (v === null ? null : Math.max(v, 0))), { kind: 'bar', ideal: stats.idealBlockTime }, stats.averageBlockTime === null ? '–' : `${num(stats.averageBlockTime, 3)} s avg`),
  ];
}

function pendingRows(records) {
  return records.map((r) => recordRow(r, [h('td', {}, when(Math.floor(r.added / 1000)))]));
}

async function home() {
  const [status, stats, blocks, pending, peers] = await Promise.all([api('/status'), api('/stats?blocks=60'), api('/blocks?limit=20'), api('/pending?limit=50'), api('/peers')]);
  setStatus(status);
  const stat = (s, st) => [
    statCard('stat-height', 'Height', s.height.toLocaleString('en-US'), h('a', { href: hrefOf.block(s.tip), class: 'mono' }, short(s.tip))),
    statCard('stat-difficulty', 'Difficulty', num(s.difficulty), `bits ${bitsHex(s.bits)}`),
    statCard('stat-hashrate', 'Network hashrate', rate(s.networkHashrate), `this node: ${rate(s.hashrate)}`),
    statCard('stat-blocktime', 'Block time', st?.averageBlockTime == null ? '–' : `${num(st.averageBlockTime, 3)} s`, `target ${s.idealBlockTime} s`),
    statCard('stat-pending', 'Pending records', s.pending.toLocaleString('en-US')),
    statCard('stat-peers', 'Peers', String(s.peers), s.syncing ? 'syncing…' : 'in sync'),
  ];
  const stats$ = h('div', { class: 'stats' }, stat(status, stats));
  const charts$ = h('div', { class: 'charts' }, chartsOf(stats));
  const tbody = h('tbody', {}, blocks.blocks.map(blockRow));
  const latest = h('div', { class: 'scroll' }, h('table', { id: 'latest-blocks' }, h('thead', {}, h('tr', {}, blockHeaders.map((x) => h('th', {}, x)))), tbody));
  const pendingBody = h('tbody', {}, pendingRows(pending.records));
  const pendingEmpty = muted('No records are waiting for a block.');
  const pendingTable = h('div', { class: 'scroll' }, h('table', { id: 'pending' }, h('thead', {}, h('tr', {}, ['Record', 'Kind', 'What', 'Received'].map((x) => h('th', {}, x)))), pendingBody));
  const pendingBox = h('div', {}, pending.records.length ? pendingTable : pendingEmpty);
  const peersBox = h('div', {}, peersList(peers.peers));

  let latestStats = stats;
  const refresh = debounce(async () => {
    try {
      const [st, pd, pr] = await Promise.all([api('/stats?blocks=60'), api('/pending?limit=50'), api('/peers')]);
      latestStats = st;
      charts$.replaceChildren(...chartsOf(st));
      stats$.replaceChildren(...stat(state.status, st));
      pendingBody.replaceChildren(...pendingRows(pd.records));
      pendingBox.replaceChildren(pd.records.length ? pendingTable : pendingEmpty);
      peersBox.replaceChildren(peersList(pr.peers));
    } catch {
      // the next tip event tries again
    }
  }, 250);

  const el = h(
    'div',
    { class: 'home' },
    stats$,
    charts$,
    h('div', { class: 'grid2' }, section(h('span', {}, 'Latest blocks ', h('a', { href: '#/blocks', class: 'more' }, 'all blocks →')), latest), section('Pending records', pendingBox)),
    section('Peers', peersBox),
  );
  return {
    el,
    onTip(d) {
      stats$.replaceChildren(...stat(d, latestStats));
      for (const hash of d.disconnected) tbody.querySelector(`tr[data-hash="${hash}"]`)?.remove();
      for (const b of d.connected) {
        if (tbody.querySelector(`tr[data-hash="${b.hash}"]`)) continue;
        tbody.querySelector(`tr[data-height="${b.height}"]`)?.remove();
        const row = blockRow(b);
        row.classList.add('fresh');
        tbody.prepend(row);
      }
      while (tbody.children.length > 20) tbody.lastElementChild.remove();
      refresh();
    },
    onRecord(r) {
      if (pendingBody.querySelector(`tr[data-id="${r.id}"]`)) return;
      pendingBody.prepend(recordRow(r, [h('td', {}, when(Math.floor(Date.now() / 1000)))]));
      pendingBox.replaceChildren(pendingTable);
      document.getElementById('stat-pending').textContent = r.pending.toLocaleString('en-US');
    },
    onReconnect: () => route(),
  };
}

function peersList(peers) {
  if (peers.length === 0) return muted('No peers connected.');
  return table(
    ['Peer', 'Addresses'],
    peers.map((p) => h('tr', {}, h('td', { class: 'mono wrap' }, p.id), h('td', {}, h('ul', { class: 'plain' }, p.addrs.map((a) => h('li', { class: 'mono wrap' }, a)))))),
  );
}

async function blocksPage(before) {
  const q = before === undefined ? '' : `&before=${Number(before)}`;
  const r = await api(`/blocks?limit=50${q}`);
  const nav = h(
    'p',
    { class: 'pager' },
    before !== undefined ? h('a', { href: '#/blocks' }, '← newest') : null,
    ' ',
    r.next !== null ? h('a', { href: `#/blocks/${r.next}` }, 'older →') : null,
  );
  return { el: h('div', {}, h('h1', {}, 'Blocks'), section(`Heights ${r.blocks.at(-1)?.height ?? 0}–${r.blocks[0]?.height ?? 0}`, table(blockHeaders, r.blocks.map(blockRow)), nav)) };
}

async function blockPage(id) {
  const b = await api(`/blocks/${enc(id)}`);
  const check = h('span', { class: 'check', id: 'hash-check', 'data-state': 'checking' }, 'checking…');
  const conf = b.mainChain
    ? h('span', {}, h('span', { 'data-conf-height': b.height }, String(b.confirmations)), ' confirmations')
    : h('span', { class: 'status offline' }, 'not on the main chain');
  const recs = b.records;
  const LIMIT = 500;
  const rows = (list) => list.map((r) => recordRow({ id: r.id, kind: r.kind, record: r }));
  const tbody = h('tbody', {}, rows(recs.slice(0, LIMIT)));
  const more =
    recs.length > LIMIT
      ? h('button', { onclick: (e) => { tbody.append(...rows(recs.slice(LIMIT))); e.target.remove(); } }, `show all ${recs.length} records`)
      : null;
  const el = h(
    'div',
    {},
    h('h1', {}, `Block ${b.height}`),
    section(
      'Header',
      fields([
        ['hash', h('span', {}, h('span', { class: 'mono wrap', id: 'block-hash' }, b.hash), ' ', check)],
        ['height', String(b.height)],
        ['status', conf],
        ['time', h('span', {}, utc(b.time), ' (', when(b.time), ')')],
        ['previous', b.height > 0 ? link('block', b.prev, b.prev, 'mono wrap') : h('span', { class: 'muted' }, 'none: this is the genesis block')],
        ['next', b.next ? link('block', b.next, b.next, 'mono wrap') : h('span', { class: 'muted' }, 'none yet')],
        ['Merkle root', h('span', { class: 'mono wrap' }, b.merkleRoot)],
        ['version', String(b.version)],
        ['bits', bitsHex(b.bits)],
        ['nonce', String(b.nonce)],
        ['chain work', h('span', { class: 'mono wrap' }, b.work)],
        ['size', bytes(b.size)],
        ['header (80 bytes)', h('span', { class: 'mono wrap small' }, b.header)],
      ]),
    ),
    section(`Records (${recs.length})`, h('div', { class: 'scroll' }, h('table', { id: 'block-records' }, h('thead', {}, h('tr', {}, ['Record', 'Kind', 'What'].map((x) => h('th', {}, x)))), tbody)), more),
  );
  return {
    el,
    after() {
      blockHashHex(hexToBytes(b.header)).then((hash) => {
        const ok = hash === b.hash;
        check.dataset.state = ok ? 'verified' : 'failed';
        check.textContent = ok ? '✔ the header hashes to this (checked here)' : `✘ the header hashes to ${hash}`;
      });
    },
  };
}

async function recordPage(id) {
  const r = await api(`/records/${enc(id)}`);
  const parts = [h('h1', {}, 'Record'), h('p', { class: 'mono wrap lead' }, r.id)];
  if (!r.confirmed) {
    parts.push(section('Status', muted('Pending: verified by this node and usable for routing, not yet in a block. Its inclusion proof comes with the block that confirms it.')));
    parts.push(section('Fields', fields(recordFields(r.record))));
    return {
      el: h('div', {}, parts),
      // Once mined, show it with its proof.
      onTip: debounce(() => api(`/records/${enc(id)}`).then((x) => x.confirmed && route(), () => undefined), 200),
    };
  }
  const status = h('div', { class: 'proof-status', id: 'proof-status', 'data-state': 'checking' }, 'Checking the inclusion proof in this browser…');
  const steps = h('ol', { class: 'steps' });
  parts.push(
    section(
      'Confirmed',
      fields([
        ['block', h('span', {}, link('block', r.block, `${r.height}`, 'height'), ' ', shortLink('block', r.block))],
        ['confirmations', h('span', { 'data-conf-height': r.height }, String(r.confirmations))],
        ['time', h('span', {}, utc(r.time), ' (', when(r.time), ')')],
        ['position', `record ${r.index} of ${r.proof.treeSize}`],
      ]),
    ),
    section('Fields', fields(recordFields(r.record))),
    section(
      'Merkle inclusion proof',
      status,
      steps,
      fields([
        ['leaf index', String(r.proof.leafIndex)],
        ['tree size', String(r.proof.treeSize)],
        ['Merkle root', h('span', { class: 'mono wrap' }, r.proof.merkleRoot)],
        ['audit path', r.proof.path.length === 0 ? h('span', { class: 'muted' }, 'empty: the record is the only leaf') : h('ol', { class: 'plain mono small' }, r.proof.path.map((p) => h('li', { class: 'wrap' }, p)))],
      ]),
      h('details', {}, h('summary', {}, 'record bytes'), h('p', { class: 'mono wrap small' }, r.bytes)),
    ),
  );
  return {
    el: h('div', {}, parts),
    after() {
      verifyRecord(r).then((res) => {
        status.dataset.state = res.ok ? 'verified' : 'failed';
        status.textContent = res.ok
          ? `✔ Verified in this browser (SHA-256 by ${sha256Source}): the record is in block ${r.height}.`
          : '✘ Verification failed: the proof does not show this record in this block.';
        steps.replaceChildren(...res.steps.map((s) => h('li', { class: s.ok ? 'ok' : 'bad' }, `${s.ok ? '✔' : '✘'} ${s.name}: `, h('span', { class: 'muted' }, s.detail))));
      });
    },
  };
}

function historyTable(items, { money = false } = {}) {
  if (items.length === 0) return muted('Nothing on the chain yet.');
  return table(
    ['Height', 'Record', 'Kind', 'What', ...(money ? ['Change'] : []), 'Time'],
    items.map((x) =>
      h(
        'tr',
        { 'data-id': x.id },
        h('td', {}, x.height === undefined ? h('span', { class: 'muted' }, 'pending') : link('block', x.block, String(x.height), 'height')),
        h('td', {}, shortLink('record', x.id)),
        h('td', {}, h('span', { class: 'badge' }, x.kind)),
        h('td', { class: 'summary' }, x.record ? summary(x.record) : ''),
        money ? h('td', { class: `num ${x.delta > 0 ? 'plus' : x.delta < 0 ? 'minus' : ''}` }, x.delta === 0 ? '' : `${x.delta > 0 ? '+' : ''}${amount(x.delta)}`) : null,
        h('td', {}, x.time ? when(x.time) : x.added ? when(Math.floor(x.added / 1000)) : ''),
      ),
    ),
  );
}

/** A history section with "older" paging, fed from one of the .../history endpoints. */
function historySection(title, path, first, opts) {
  const body = h('div', {});
  const render = (page) => {
    const items = [...(page.offset === 0 ? page.pending : []), ...page.items];
    const pager = h(
      'p',
      { class: 'pager' },
      page.offset > 0 ? h('button', { onclick: () => load(Math.max(0, page.offset - page.limit)) }, '← newer') : null,
      page.next !== null ? h('button', { onclick: () => load(page.next) }, 'older →') : null,
      page.complete ? null : h('span', { class: 'muted' }, ` history indexed up to height ${page.indexedHeight}; the rest is being read`),
    );
    body.replaceChildren(historyTable(items, opts), pager);
  };
  const load = (offset) => api(`${path}?limit=${first.limit}&offset=${offset}`).then(render, (e) => body.replaceChildren(muted(e.message)));
  render(first);
  return section(`${title} (${first.total})`, body);
}

async function namePage(name) {
  const n = await api(`/names/${enc(name)}`);
  const hist = await api(`/names/${enc(n.name)}/history?limit=20`);
  const b = n.binding;
  const state$ = n.expired
    ? h('span', { class: 'status offline' }, 'expired')
    : h('span', { class: `status ${n.online ? 'online' : 'offline'}`, id: 'name-status' }, n.online ? 'online' : 'offline');
  return {
    el: h(
      'div',
      {},
      h('h1', { class: 'name' }, n.name, ' ', state$),
      section(
        'Owner',
        n.owner === null
          ? muted('Not claimed on the chain yet (only a pending binding is known).')
          : fields([
              ['owner key', keyWithAddress(n.owner)],
              ['owner address', link('address', n.ownerAddress, n.ownerAddress, 'mono wrap')],
              ['claimed at', n.since === null ? '–' : `height ${n.since}`],
              ['expires at', `height ${n.expiry}${n.expired ? ' (expired)' : ''}`],
              ['name sequence', String(n.seq)],
              ['serving nodes', nodeList(n.delegates)],
            ]),
      ),
      section(
        n.bindings.length > 1 ? `Bindings (${n.bindings.length}; calls go to the first, then the next online ones)` : 'Current binding',
        b === null
          ? muted('No binding: no node serves this name now.')
          : h(
              'div',
              {},
              n.bindings.map((x) =>
                fields([
                  ['served by node', link('node', x.node)],
                  ['status', h('span', { class: `status ${x.status}` }, x.status)],
                  ['binding expires', h('span', {}, utc(x.expires), ' (', when(x.expires), ')')],
                  ['sequence', String(x.seq)],
                  ['confirmed', x.confirmed ? h('span', {}, 'yes, in block ', link('block', String(x.height), String(x.height), 'height')) : 'no: pending (already used for routing)'],
                ]),
              ),
            ),
      ),
      historySection('History', `/names/${enc(n.name)}/history`, hist),
    ),
    onTip: debounce(() => route(), 300),
  };
}

async function nodePage(id) {
  const [n, hist] = await Promise.all([api(`/nodes/${enc(id)}`), api(`/nodes/${enc(id)}/history?limit=20`)]);
  return {
    el: h(
      'div',
      {},
      h('h1', {}, 'Node ', h('span', { class: 'mono' }, short(n.id, 8, 6)), ' ', n.connected ? h('span', { class: 'status online' }, 'connected peer') : null),
      section(
        'Announcement',
        fields([
          ['node id', h('span', { class: 'mono wrap' }, n.id)],
          ['key', keyWithAddress(n.pubkey)],
          ['SIP', n.sipUris.length ? h('ul', { class: 'plain' }, n.sipUris.map((u) => h('li', { class: 'mono' }, u))) : h('span', { class: 'muted' }, 'none')],
          ['p2p', n.p2pAddrs.length ? h('ul', { class: 'plain' }, n.p2pAddrs.map((u) => h('li', { class: 'mono wrap' }, u))) : h('span', { class: 'muted' }, 'none')],
          ['reward address', link('address', n.rewardAddress, n.rewardAddress, 'mono wrap')],
          ['announced since', `height ${n.since}`],
          ['sequence', String(n.seq)],
        ]),
      ),
      section(
        'Earned',
        fields([
          ['reward balance', amount(n.earned.balance)],
          ['blocks mined', String(n.earned.blocksMined)],
          ['mining rewards', amount(n.earned.mined)],
        ]),
      ),
      section(
        `Serves (${n.serves.length})`,
        n.serves.length === 0
          ? muted('No name is bound to this node now.')
          : table(
              ['Name', 'Status', 'Expires', 'Since height'],
              n.serves.map((s) => h('tr', {}, h('td', {}, link('name', s.name, s.name, 'name')), h('td', {}, h('span', { class: `status ${s.status}` }, s.status)), h('td', {}, when(s.expires)), h('td', {}, String(s.height)))),
            ),
      ),
      historySection('History', `/nodes/${enc(n.id)}/history`, hist),
    ),
  };
}

async function nodesPage() {
  const r = await api('/nodes?limit=1000');
  return {
    el: h(
      'div',
      {},
      h('h1', {}, 'Nodes'),
      section(
        `Announced nodes (${r.total})`,
        r.nodes.length === 0
          ? muted('No node has announced itself on this chain yet.')
          : table(
              ['Node', 'SIP', 'Reward address', 'Since'],
              r.nodes.map((n) => h('tr', {}, h('td', {}, shortLink('node', n.id)), h('td', { class: 'mono' }, n.sipUris.join(', ')), h('td', {}, shortLink('address', n.rewardAddress)), h('td', {}, String(n.since)))),
            ),
      ),
    ),
  };
}

async function addressPage(addr) {
  const [a, hist] = await Promise.all([api(`/accounts/${enc(addr)}`), api(`/accounts/${enc(addr)}/history?limit=20`)]);
  return {
    el: h(
      'div',
      {},
      h('h1', {}, 'Address'),
      h('p', { class: 'mono wrap lead' }, a.address),
      section('Account', fields([['balance', h('strong', { id: 'balance' }, amount(a.balance))], ['nonce (transfers sent)', String(a.nonce)]])),
      historySection('History', `/accounts/${enc(a.address)}/history`, hist, { money: true }),
    ),
    onTip: debounce(() => route(), 300),
  };
}

const RESULT_LABEL = { block: 'Block', record: 'Record', name: 'Name', node: 'Node', address: 'Address' };

async function searchPage(q) {
  let r;
  try {
    r = await api(`/search?q=${enc(q)}`);
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      return { el: h('div', {}, h('h1', {}, 'Search'), section(e.status === 404 ? `Nothing found for “${q}”` : 'Not something to search for', muted(e.message))) };
    }
    throw e;
  }
  if (r.results.length === 1) {
    const x = r.results[0];
    location.replace(hrefOf[x.type](x.id));
    return null;
  }
  return {
    el: h(
      'div',
      {},
      h('h1', {}, `Results for “${q}”`),
      section('Matches', h('ul', { class: 'results' }, r.results.map((x) => h('li', {}, h('span', { class: 'badge' }, RESULT_LABEL[x.type]), ' ', link(x.type, x.id, x.id, 'mono wrap'))))),
    ),
  };
}

// ---------------------------------------------------------------- router

const routes = [
  [/^\/?$/, home],
  [/^\/blocks(?:\/([0-9]+))?$/, blocksPage],
  [/^\/block\/([^/]+)$/, blockPage],
  [/^\/record\/([^/]+)$/, recordPage],
  [/^\/name\/(.+)$/, namePage],
  [/^\/nodes$/, nodesPage],
  [/^\/node\/([^/]+)$/, nodePage],
  [/^\/address\/([^/]+)$/, addressPage],
  [/^\/search\/(.+)$/, searchPage],
];

function errorView(e) {
  const title = e.status === 404 ? 'Not found' : e.status === 400 ? 'Not understood' : 'Something went wrong';
  return h('div', {}, h('h1', {}, title), section(e.message || String(e), h('p', {}, h('a', { href: '#/' }, '← back to the overview'))));
}

let renderSeq = 0;
async function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  const seq = ++renderSeq;
  for (const [re, page] of routes) {
    const m = re.exec(path);
    if (m === null) continue;
    try {
      const args = m.slice(1).map((a) => (a === undefined ? undefined : decodeURIComponent(a)));
      const r = await page(...args);
      if (seq !== renderSeq || r === null) return;
      state.current = r;
      view.replaceChildren(r.el);
      r.after?.();
    } catch (e) {
      if (seq !== renderSeq) return;
      state.current = null;
      view.replaceChildren(errorView(e));
    }
    return;
  }
  state.current = null;
  view.replaceChildren(errorView(new ApiError(404, 'There is no such page in this explorer.')));
}

let lastPath = null;
window.addEventListener('hashchange', () => {
  const path = location.hash;
  const sameView = path === lastPath;
  lastPath = path;
  route().then(() => {
    if (!sameView) window.scrollTo(0, 0);
  });
});

document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = e.target.elements.q;
  const q = input.value.trim();
  if (q === '') return;
  input.blur();
  const target = `#/search/${enc(q)}`;
  if (location.hash === target) route();
  else location.hash = target;
});

lastPath = location.hash;
route();
connectLive();
