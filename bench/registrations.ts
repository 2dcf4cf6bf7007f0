// `dots bench registrations`: what saving the registrar's contacts (DATADIR/registrations.json,
// node/registrations.ts) costs the event loop, at 10,000 and 100,000 contacts. A node saves
// within a second of a phone coming or going, so on a busy node this runs every second. For
// each size, three saves made a slice of contacts per turn and written as made (the node's way)
// and three made in one turn and written as one string (the way before, kept here to compare),
// interleaved: the longest turn of the event loop during a save
// (what a SIP message arriving then waits), the save's time to the renamed file, and its size.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registrar, type SavedContact } from '../sip/registrar.ts';
import { RegistrationsFile, REGISTRATIONS_FILE } from '../node/registrations.ts';
import { silentLogger } from '../core/log.ts';
import { writeOwnerOnlyAsync } from '../core/files.ts';
import { median } from './stats.ts';

type Row = Record<string, string | number>;

/** Contacts shaped as SIPp's phones register them in `bench sip` (a UDP flow, a User-Agent, no instance). */
function contacts(n: number): SavedContact[] {
  const out: SavedContact[] = [];
  const expiresAt = Date.now() + 3_600_000;
  for (let i = 0; i < n; i++) {
    out.push({
      aor: `sip:user${i}@bench.local`,
      uri: `sip:user${i}@127.0.0.1:${10_000 + (i % 50_000)}`,
      params: '',
      q: -1,
      expiresAt,
      callId: `${i}-4242@127.0.0.1`,
      cseq: 1 + (i % 20),
      instance: null,
      regId: null,
      path: [],
      flow: { proto: 'udp', address: '127.0.0.1', port: 10_000 + (i % 50_000), conn: 0 },
      outbound: false,
      userAgent: 'SIPp',
    });
  }
  return out;
}

/** One save; the longest gap between turns of the event loop while it ran, and its time, ms. */
async function timedSave(save: () => Promise<void>): Promise<{ longestTurn: number; ms: number }> {
  let longest = 0;
  let last = performance.now();
  let saving = true;
  const tick = (): void => {
    const now = performance.now();
    if (now - last > longest) longest = now - last;
    last = now;
    if (saving) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  await save();
  const ms = performance.now() - start;
  saving = false;
  tick();
  return { longestTurn: longest, ms };
}

export async function benchRegistrations(o: { json: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of [10_000, 100_000]) {
    const dir = mkdtempSync(join(tmpdir(), 'dots-bench-registrations-'));
    const reg = new Registrar({ domain: 'bench.local' });
    try {
      reg.restore(contacts(n));
      const file = new RegistrationsFile(dir, reg, silentLogger);
      const path = join(dir, REGISTRATIONS_FILE);
      const ways = [
        { name: 'a slice of contacts per turn', save: () => file.saveNow() },
        // node/registrations.ts until 2026-12-05
        { name: 'all in one turn (before)', save: () => writeOwnerOnlyAsync(path, JSON.stringify({ version: 1, contacts: reg.snapshot() }) + '\n') },
      ];
      // one save each first: compiled code and a file to replace, as on a node that has run
      for (const w of ways) await w.save();
      const runs = ways.map(() => [] as Array<{ longestTurn: number; ms: number }>);
      for (let k = 0; k < 3; k++) for (let i = 0; i < ways.length; i++) runs[i].push(await timedSave(ways[i].save));
      const bytes = statSync(path).size;
      ways.forEach((w, i) => {
        const longest = runs[i].map((r) => r.longestTurn);
        const total = runs[i].map((r) => r.ms);
        if (!o.json) console.log(`${n} contacts, ${w.name}: longest turns ${longest.map((x) => x.toFixed(1)).join(', ')} ms; saves ${total.map((x) => x.toFixed(0)).join(', ')} ms`);
        rows.push({
          contacts: n,
          save: w.name,
          'longest turn ms': Number(Math.max(...longest).toFixed(1)),
          'save ms (median)': Number(median(total).toFixed(0)),
          'file bytes': bytes,
        });
      });
    } finally {
      reg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}
