// Registrations outlive a crash: a node killed with SIGKILL (no clean stop) comes back with the
// phones that were registered a second before, and pings them before it trusts them.
import t from 'tap';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { runDots, startNode } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';

const DOMAIN = 'crash.test';

t.test('registrations survive SIGKILL', async (t) => {
  const datadir = join(tmpDir(t), 'node');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'pw-alice', '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  const o = { datadir, args: ['--domain', DOMAIN] };
  const first = await startNode(t, o);
  const port = first.sipPort;
  const phone = await new TestPhone({ host: '127.0.0.1', port }).open();
  t.teardown(() => phone.close());
  t.equal((await phone.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'pw-alice', expires: 600 })).status, 200, 'registered');
  await waitFor('the registration written out', async () => existsSync(join(datadir, 'registrations.json')), 5000);
  await new Promise((r) => setTimeout(r, 300));
  first.child.kill('SIGKILL');
  await first.exited;

  const pingsBefore = phone.options;
  // the SIP port was free-picked: the phone's contact names its own address, so the new node
  // (on a new port) reaches it wherever it listens now
  const second = await startNode(t, o);
  await waitFor('the restored contact pinged by the new process', async () => phone.options > pingsBefore, 10_000);
  t.pass('the node pinged the phone it knew before the crash');
  t.match(second.lines.join('\n'), /1 registration\(s\) restored, verifying them/, 'and says so in its log');
  second.child.kill('SIGTERM');
  await second.exited;
});
