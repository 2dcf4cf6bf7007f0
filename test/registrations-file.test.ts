// The registrar's contacts on disk (node/registrations.ts): a save is made a slice of contacts per
// turn of the event loop, so SIP is read between slices; the file it writes is the one a single
// snapshot made before slices (restarts read it the same way); a contact added while a save is
// under way is in the next one; a new registrar gets them all back. A real Registrar and real
// files; the SIGKILL case is test/sip-crash.test.ts.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registrar, type SavedContact } from '../sip/registrar.ts';
import { RegistrationsFile, REGISTRATIONS_FILE } from '../node/registrations.ts';
import { silentLogger } from '../core/log.ts';
import { eventually } from './util/wait.ts';

const DOMAIN = 'reg.test';

function contacts(from: number, n: number): SavedContact[] {
  const out: SavedContact[] = [];
  for (let i = from; i < from + n; i++) {
    out.push({
      aor: `sip:u${i}@${DOMAIN}`,
      uri: `sip:u${i}@127.0.0.1:${5000 + (i % 1000)};transport=udp`,
      params: i % 2 === 0 ? ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>";reg-id=1' : '',
      q: i % 3 === 0 ? 500 : -1,
      expiresAt: Date.now() + 3_600_000,
      callId: `call-${i}@127.0.0.1`,
      cseq: i,
      instance: i % 2 === 0 ? '<urn:uuid:00000000-0000-1000-8000-000000000001>' : null,
      regId: i % 2 === 0 ? 1 : null,
      path: i % 5 === 0 ? ['<sip:edge.example;lr>'] : [],
      flow: { proto: 'udp', address: '127.0.0.1', port: 5000 + (i % 1000), conn: 0 },
      outbound: i % 2 === 0,
      userAgent: `phone "${i}" \\ test`,
    });
  }
  return out;
}

const fileOf = (dir: string): { version: number; contacts: SavedContact[] } => JSON.parse(readFileSync(join(dir, REGISTRATIONS_FILE), 'utf8')) as { version: number; contacts: SavedContact[] };

/** Calls `after(k)` each time the walk of a save goes on past its k-th slice (a spy on the real registrar). */
function watchSlices(reg: Registrar, after: (k: number) => void): void {
  const walk = reg.snapshotSlices.bind(reg);
  reg.snapshotSlices = function* (max: number) {
    let k = 0;
    for (const slice of walk(max)) {
      yield slice;
      after(++k);
    }
  };
}

t.test('a save of 5,000 contacts is made over several turns and holds every one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dots-regfile-'));
  const reg = new Registrar({ domain: DOMAIN });
  const file = new RegistrationsFile(dir, reg, silentLogger, { sliceContacts: 1000 });
  t.teardown(async () => {
    await file.stop();
    reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  t.equal(reg.restore(contacts(0, 5000)), 5000);
  // another task counts the turns of the event loop; the save notes the count at each slice
  let turns = 0;
  let saving = true;
  const tick = (): void => {
    turns++;
    if (saving) setImmediate(tick);
  };
  const seen: number[] = [turns];
  watchSlices(reg, () => seen.push(turns));
  setImmediate(tick);
  await file.saveNow();
  saving = false;
  t.equal(seen.length, 6, 'five slices');
  t.ok(seen.every((x, i) => i === 0 || x > seen[i - 1]), `the loop turned between every two slices (turns ${seen.join(', ')})`);
  const text = readFileSync(join(dir, REGISTRATIONS_FILE), 'utf8');
  t.equal(text, JSON.stringify({ version: 1, contacts: reg.snapshot() }) + '\n', 'byte for byte the file one snapshot made');
  t.equal(fileOf(dir).contacts.length, 5000);
});

t.test('a contact added while a save is under way is in the next save, and a new registrar gets them all', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dots-regfile-'));
  const reg = new Registrar({ domain: DOMAIN });
  const file = new RegistrationsFile(dir, reg, silentLogger, { sliceContacts: 500 });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  file.start();
  reg.restore(contacts(0, 3000));
  // once the walk has passed u0 (in the first slice): a second phone of u0
  let added = false;
  watchSlices(reg, (k) => {
    if (k === 1) queueMicrotask(() => (added = reg.restore([{ ...contacts(0, 1)[0], uri: 'sip:u0@127.0.0.1:6000', callId: 'second-phone@127.0.0.1' }]) === 1));
  });
  await file.saveNow();
  t.ok(added, 'a second phone of u0 registered during the save');
  t.equal(fileOf(dir).contacts.length, 3000, 'the save under way had passed u0');
  // the file's own check (once a second) sees the change made during the save
  t.ok(await eventually(() => fileOf(dir).contacts.length === 3001, 5000), 'the next save has the second phone');
  t.equal(fileOf(dir).contacts.filter((c) => c.aor === `sip:u0@${DOMAIN}`).length, 2);
  await file.stop();
  reg.stop();

  const again = new Registrar({ domain: DOMAIN });
  const back = new RegistrationsFile(dir, again, silentLogger);
  back.start();
  t.equal(again.contactCount, 3001, 'restored on start');
  t.same(again.snapshot().map((c) => c.uri).sort(), fileOf(dir).contacts.map((c) => c.uri).sort());
  await back.stop();
  again.stop();
});

t.test('with many contacts a save waits ten times the last one\'s length after it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dots-regfile-'));
  const reg = new Registrar({ domain: DOMAIN });
  const file = new RegistrationsFile(dir, reg, silentLogger);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  file.start();
  reg.restore(contacts(0, 50_000));
  const before = Date.now();
  await file.saveNow();
  const took = file.lastSaveMs;
  t.ok(took > 0, `the save of 50,000 contacts took ${took} ms`);
  reg.restore(contacts(50_000, 1));
  // the next save is a new file renamed over the old: a new inode
  const path = join(dir, REGISTRATIONS_FILE);
  const first = statSync(path).ino;
  t.ok(await eventually(() => statSync(path).ino !== first, 10 * took + 5000, 20), 'saved again');
  const seen = Date.now();
  t.ok(seen - before >= 10 * took, `saved again ${seen - before} ms after the last save began, not before ${10 * took}`);
  t.equal(fileOf(dir).contacts.length, 50_001, 'with the contact added');
  await file.stop();
  reg.stop();
});
