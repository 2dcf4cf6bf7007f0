// `dots user add` and the account store a running node reads: HA1 values only, owner-only,
// atomic writes, accounts added while running picked up without a restart, clear errors.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDots, startNode } from './util/proc.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { tmpDir } from './util/tmp.ts';
import { UserStore, addUser } from '../telecom/users.ts';

t.test('dots user add', async (t) => {
  const dir = tmpDir(t);
  let r = await runDots(['user', 'add', 'alice', '--password', 'pw1', '--datadir', dir, '--domain', 'Example.ORG']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^added sip:alice@example\.org in .*users\.json/);
  const file = join(dir, 'users.json');
  t.equal(statSync(file).mode & 0o777, 0o600, 'owner-only');
  const f = JSON.parse(readFileSync(file, 'utf8')) as { users: Record<string, { realm: string; md5: string; sha256: string }> };
  t.same(f.users.alice, {
    realm: 'example.org',
    md5: createHash('md5').update('alice:example.org:pw1').digest('hex'),
    sha256: createHash('sha256').update('alice:example.org:pw1').digest('hex'),
  }, 'HA1 = H(user:realm:password) for MD5 and SHA-256, realm = the domain');
  r = await runDots(['user', 'add', 'alice', '--password', 'pw2', '--datadir', dir, '--domain', 'example.org']);
  t.match(r.stdout, /^updated sip:alice@example\.org/, 'a new password replaces the old');
  for (const [args, re] of [
    [['user', 'add', 'Alice!', '--password', 'x', '--datadir', dir], /user name "Alice!" must be/],
    [['user', 'add', 'bob', '--datadir', dir], /give the password with --password/],
    [['user', 'add', '--password', 'x', '--datadir', dir], /usage: dots user add NAME/],
    [['user', 'add', 'bob', '--password', '', '--datadir', dir], /must not be empty/],
    [['user', 'add', 'bob', '--password', 'x', '--domain', 'bad domain', '--datadir', dir], /--domain must be a domain name/],
    [['user', 'remove', 'bob'], /unknown user command "remove"/],
    [['user', 'add', 'bob', '--password', 'x', '--alias', '555-1234', '--datadir', dir], /alias "555-1234" is not a name: use an E.164 number/],
  ] as Array<[string[], RegExp]>) {
    const e = await runDots(args);
    t.equal(e.code, 2, args.join(' '));
    t.match(e.stderr, re);
    t.equal(e.stderr.trim().split('\n').length, 1, 'one line');
  }
  writeFileSync(join(dir, 'users.json'), 'not json');
  const bad = await runDots(['user', 'add', 'bob', '--password', 'x', '--datadir', dir]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /is not a DOTS users file/);
});

t.test('UserStore: reloads on change, warns about another realm, survives a broken file', async (t) => {
  const dir = tmpDir(t);
  const warnings: string[] = [];
  addUser(dir, 'alice', 'pw', 'dots.test');
  const store = new UserStore(dir, 'dots.test', (m) => warnings.push(m), 50);
  t.teardown(() => store.stop());
  const added: string[] = [];
  store.onAdded = (n): void => void added.push(...n);
  t.ok(store.lookup('alice'));
  t.equal(store.lookup('bob'), undefined);
  addUser(dir, 'bob', 'pw', 'dots.test');
  await new Promise((r) => setTimeout(r, 1100)); // lookups re-read at most once a second
  t.ok(store.lookup('bob'), 'an account added while running is found');
  t.same(added, ['bob']);
  addUser(dir, 'carol', 'pw', 'other.test');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(store.lookup('carol'), undefined, 'an account for another realm cannot log in');
  t.match(warnings.join('\n'), /another SIP domain/);
  writeFileSync(join(dir, 'users.json'), '{broken');
  await new Promise((r) => setTimeout(r, 200));
  t.ok(store.lookup('alice'), 'a broken file keeps the accounts loaded before');
  t.match(warnings.join('\n'), /keeping the accounts loaded before/);
});

t.test('dots user add, eight at once: every account lands (the file is locked while it changes)', async (t) => {
  const dir = tmpDir(t);
  const names = Array.from({ length: 8 }, (_, i) => `u${i}`);
  const runs = await Promise.all(names.map((n) => runDots(['user', 'add', n, '--password', `pw-${n}`, '--datadir', dir, '--domain', 'lock.test'])));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  const file = JSON.parse(readFileSync(join(dir, 'users.json'), 'utf8')) as { users: Record<string, unknown> };
  t.same(Object.keys(file.users).sort(), names, 'all eight accounts are in users.json');
  t.notOk(existsSync(join(dir, 'users.json.lock')), 'no lock left behind');
});

t.test('the domain belongs to the data directory: dots user add and dots node take it from there', async (t) => {
  const dir = tmpDir(t);
  let r = await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--datadir', dir, '--domain', 'a.test']);
  t.equal(r.code, 0);
  t.equal(readFileSync(join(dir, 'domain'), 'utf8'), 'a.test\n', 'the first to fix it records it');
  r = await runDots(['user', 'add', 'bob', '--password', 'bob-pw', '--datadir', dir]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^added sip:bob@a\.test /, 'without --domain a user gets the data directory\'s');
  r = await runDots(['user', 'add', 'carol', '--password', 'pw', '--datadir', dir, '--domain', 'b.test']);
  t.equal(r.code, 2, 'an account the node could not authenticate is refused');
  t.equal(r.stderr.trim().split('\n').length, 1);
  t.match(r.stderr, /serves the domain a\.test, so sip:carol@b\.test could not log in there: leave out --domain/);
  // the node started without --domain serves the data directory's, and alice logs in
  const node = await startNode(t, { datadir: dir, args: ['--sip-keepalive', '60'] });
  t.match(node.stdout.join('\n'), /for domain a\.test/, 'the node serves a.test');
  const phone = await new TestPhone({ host: '127.0.0.1', port: node.sipPort }).open();
  t.teardown(() => phone.close());
  t.equal((await phone.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registers');
  await node.stop();

  // The order a new user tried: the account first (the default domain), then the node with
  // another domain. The node says why the account cannot log in, and how to fix it.
  const other = tmpDir(t);
  const first = await runDots(['user', 'add', 'alice', '--password', 'pw', '--datadir', other]);
  t.equal(first.code, 0);
  const own = /sip:alice@(n[0-9a-f]{16}\.dots) /.exec(first.stdout)?.[1];
  t.ok(own, `without any domain the account gets the node's own (${first.stdout.trim()})`);
  const alone = await startNode(t, { datadir: other, args: ['--sip-keepalive', '60'] });
  t.match(alone.stdout.join('\n'), new RegExp(`for domain ${own}`), 'and the node, started without --domain, serves that same domain');
  await alone.stop();
  const second = await startNode(t, { datadir: other, args: ['--domain', 'a.test'] });
  await waitFor('the warning', async () => second.lines.find((l) => /another SIP domain/.test(l)), 5000);
  t.match(second.lines.find((l) => /another SIP domain/.test(l)) ?? '', /1 account\(s\) were added for another SIP domain and cannot log in here \(re-add them with --domain a\.test\): alice/);
  t.equal(readFileSync(join(other, 'domain'), 'utf8'), 'a.test\n', 'the node records the domain it now serves');
  await second.stop();
  r = await runDots(['user', 'add', 'alice', '--password', 'pw', '--datadir', other]);
  t.match(r.stdout, /^updated sip:alice@a\.test /, 're-adding the account gives it the domain the node serves');
});
