// Linphone (linphonec 5.1), a standard SIP phone with RFC 8760 and RFC 5626 support, registering
// to a `dots node`: what the other phones here cannot show (SIPp and baresip 1.0 only do MD5;
// baresip sends +sip.instance / reg-id only with sipnat=outbound, test/names-roaming-baresip.test.ts).
//
// Node A serves lin.test (carol, a Linphone), node B serves b.test (bob, a baresip). Checked from
// Linphone's own SIP log (linphonec -d 6 -l FILE), message by message:
//   1. digest SHA-256: the node's 401 offers SHA-256 first (then MD5), Linphone answers with
//      algorithm=SHA-256, and the node accepts it (200);
//   2. outbound: the REGISTER's Contact carries +sip.instance and reg-id, and the node keeps them:
//      its 200 lists the contact with both, and `Require: outbound` (the binding is a flow);
//   3. the node pings Linphone with OPTIONS, Linphone answers, and carol's binding turns online on
//      the chain (confirmed once blocks are mined);
//   4. a call across the nodes, Linphone calling bob (baresip at B, answering by itself): the
//      INVITE goes carol -> A -> B -> bob, SRTP flows straight between the phones both ways, and
//      Linphone hangs up (skipped, with node B, when baresip is not installed);
//   5. on `quit` Linphone unregisters (Expires: 0, SHA-256 again, 200) and the binding turns
//      offline, confirmed in a block.
//
// Linphone (and baresip) open sockets beyond the SIP port, so the whole test runs in a network
// namespace of its own (unshare -n, loopback only): the file re-runs itself there. Linphone checks
// every few seconds that the host has an address other than loopback and, when it has none, takes
// the network as down and drops its registration without unregistering; so the namespace gets
// 10.255.0.1 on lo and a default route through lo (nothing can leave the namespace anyway).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, has, runDots, stopProcess } from './util/proc.ts';
import { tmpDir, type Teardown } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { inNetworkNamespace, startBaresip } from './phones.ts';
import { bindingAt, mineUntil, type Binding } from './util/names.ts';

/** One SIP message in Linphone's log: sent to or received from `peer`. */
interface Traced {
  dir: 'sent' | 'received';
  peer: string;
  text: string;
}

/** A header's value (the first one, or all of them), case-insensitive, in a traced message. */
function header(m: Traced | undefined, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*?)\\s*$`, 'im').exec(m?.text ?? '')?.[1];
}
function headers(m: Traced | undefined, name: string): string[] {
  return [...(m?.text ?? '').matchAll(new RegExp(`^${name}:[ \\t]*(.*?)\\s*$`, 'gim'))].map((x) => x[1]);
}

/** A linphonec configured as ../shared/phones/README.md says, driven through its stdin. */
class Linphone {
  private out = '';
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stdin?.on('error', () => undefined);
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  /** With `tls`, `nodePort` is the node's TLS port and Linphone speaks TLS only (its own listener on `sipPort`). */
  static start(t: Teardown, dir: string, o: { user: string; domain: string; password: string; nodePort: number; sipPort: number; rtpPort: number; tls?: boolean }): Linphone {
    const home = join(dir, `linphone-${o.user}`);
    const tls = o.tls === true;
    // its databases (call history, chat) go under $HOME/.local/share/linphone: without the folder
    // the core does not start
    mkdirSync(join(home, '.local', 'share', 'linphone'), { recursive: true });
    const node = `sip:127.0.0.1:${o.nodePort};transport=${tls ? 'tls' : 'udp'}`;
    const rc = join(home, 'linphonerc');
    writeFileSync(
      rc,
      [
        '[sip]',
        'bind_address=127.0.0.1',
        `sip_port=${tls ? 0 : o.sipPort}`,
        'sip_tcp_port=0',
        `sip_tls_port=${tls ? o.sipPort : 0}`,
        // the node's certificate is its own (the chain, not a CA, vouches for it between nodes)
        ...(tls ? ['verify_server_certs=0', 'verify_server_cn=0'] : []),
        'media_encryption=srtp',
        'use_ipv6=0',
        'default_proxy=0',
        '',
        '[rtp]',
        'bind_address=127.0.0.1',
        `audio_rtp_port=${o.rtpPort}`,
        '',
        '[proxy_0]',
        `reg_proxy=<${node}>`,
        `reg_route=<${node};lr>`,
        `reg_identity=sip:${o.user}@${o.domain}`,
        'reg_sendregister=1',
        'reg_expires=600',
        // Linphone sends +sip.instance by itself; reg-id (RFC 5626 4.2.1) only when asked to
        'contact_parameters=reg-id=1',
        '',
        '[auth_info_0]',
        `username=${o.user}`,
        `passwd=${o.password}`,
        `realm=${o.domain}`,
        '',
      ].join('\n'),
    );
    const logFile = join(home, 'linphone.log');
    const child = spawn('linphonec', ['-c', rc, '-d', '6', '-l', logFile], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: home } });
    const phone = new Linphone(child, logFile);
    t.teardown(() => phone.stop());
    // no sound card: play a file into calls (without one it sends no RTP at all)
    phone.send('soundcard use files');
    phone.send('play /usr/share/sounds/linphone/hello8000.wav');
    return phone;
  }

  send(command: string): void {
    this.child.stdin?.write(`${command}\n`);
  }

  /** What linphonec printed on its console. */
  output(): string {
    return this.out;
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'latin1') : '';
  }

  /** The SIP messages of the log: belle-sip logs each one after a line "message sent to [UDP://...]"
   *  or "received [N] new bytes from [UDP://...]:" (what one read brought), up to the next timestamped line. */
  traced(): Traced[] {
    const msgs: Traced[] = [];
    const entries = this.log().split(/\r?\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} )/);
    for (const e of entries) {
      const m = /^[^\n]*?(message sent to|received \[\d+\] new bytes from) \[(?:UDP|TCP|TLS):\/\/([^\]]+)\][^\n]*\n([\s\S]*)$/.exec(e);
      if (m === null) continue;
      // One read of a TCP or TLS stream may carry several messages (a node sends what one turn
      // made in one write): each starts at a start line.
      for (const text of m[3].replace(/\r\n/g, '\n').split(/\n(?=SIP\/2\.0 \d{3} |[A-Z]+ sip:\S* SIP\/2\.0\n)/)) {
        msgs.push({ dir: m[1] === 'message sent to' ? 'sent' : 'received', peer: m[2], text });
      }
    }
    return msgs;
  }

  /** The first traced message in direction `dir` whose text matches `start` (and `o`). */
  find(dir: 'sent' | 'received', start: RegExp, o: { cseq?: RegExp; has?: RegExp } = {}): Traced | undefined {
    return this.traced().find((m) => m.dir === dir && start.test(m.text) && (o.cseq === undefined || o.cseq.test(header(m, 'CSeq') ?? '')) && (o.has === undefined || o.has.test(m.text)));
  }

  async quit(timeoutMs: number): Promise<boolean> {
    this.send('quit');
    return Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  }

  async stop(): Promise<void> {
    await stopProcess(this.child, 2000);
  }
}

const setup = ['ip addr add 10.255.0.1/32 dev lo', 'ip route add default dev lo src 10.255.0.1'];
inNetworkNamespace({ file: import.meta.url, title: 'Linphone registers to a node (in a network namespace)', needs: ['linphonec'], install: 'linphone-cli', setup }, () => {
  t.test('Linphone: SHA-256 digest, outbound, verified online, a call across nodes, offline on quit', async (t) => {
    const t0 = Date.now();
    const withCall = has('baresip');
    const dir = tmpDir(t);
    const h = new Harness(t);
    const carolAcc = { user: 'carol', domain: 'lin.test', password: 'carol-Secret-1' };
    const bobAcc = { user: 'bob', domain: 'b.test', password: 'bob-Secret-1' };
    const datadirA = join(dir, 'node-A');
    const datadirB = join(dir, 'node-B');
    for (const [acc, datadir] of [[carolAcc, datadirA], [bobAcc, datadirB]] as const) {
      const r = await runDots(['user', 'add', acc.user, '--password', acc.password, '--datadir', datadir, '--domain', acc.domain]);
      t.equal(r.code, 0, `account ${acc.user}@${acc.domain} created${r.code === 0 ? '' : ': ' + r.stderr}`);
    }
    const a = await h.start('A', { datadir: datadirA, args: ['--domain', carolAcc.domain, '--sip-keepalive', '2'] });
    const b = withCall ? await h.start('B', { datadir: datadirB, bootstrap: [a.p2p], args: ['--domain', bobAcc.domain, '--sip-keepalive', '2'] }) : undefined;
    const A = `127.0.0.1:${a.sipPort}`;
    const nodeLogs = (): string => `\n--- A\n${a.log(20)}${b === undefined ? '' : `\n--- B\n${b.log(20)}`}`;

    const carol = Linphone.start(t, dir, { ...carolAcc, nodePort: a.sipPort, sipPort: 20_000, rtpPort: 20_100 });
    const bob = b === undefined ? undefined : startBaresip(t, dir, { ...bobAcc, nodePort: b.sipPort, sipPort: 20_002, rtpPorts: '30000-30100', trace: true });
    const carolTail = (): string => `\n--- linphonec console\n${carol.output().slice(-1500)}\n--- Linphone's SIP log (last messages)\n${carol.traced().slice(-6).map((m) => `[${m.dir} ${m.peer}]\n${m.text}`).join('\n')}`;

    // 1. registration with SHA-256 digest
    const ok = await waitFor('Linphone registered (200 to an authenticated REGISTER)', async () => carol.find('received', /^SIP\/2\.0 200 /, { cseq: /REGISTER/ }), 15_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${carolTail()}${nodeLogs()}`);
    });
    const first = carol.find('sent', /^REGISTER /);
    t.equal(first?.peer, A, 'Linphone sent its REGISTER to node A');
    t.equal(header(first, 'Authorization'), undefined, 'the first REGISTER has no credentials');
    const challenge = carol.find('received', /^SIP\/2\.0 401 /, { cseq: /REGISTER/ });
    const offers = headers(challenge, 'WWW-Authenticate');
    t.equal(offers.length, 2, `the node's 401 offers two challenges: ${offers.join(' | ')}`);
    t.match(offers[0] ?? '', /^Digest realm="lin\.test",.*\balgorithm=SHA-256\b/, 'SHA-256 first (RFC 8760: preferred first)');
    t.match(offers[1] ?? '', /\balgorithm=MD5\b/, 'then MD5');
    t.match(offers[0] ?? '', /\bqop="auth"/, 'with qop=auth');
    const authed = carol.find('sent', /^REGISTER /, { has: /^Authorization:/m });
    const authorization = header(authed, 'Authorization') ?? '';
    t.match(authorization, /^Digest /, `Linphone answers the challenge: ${authorization}`);
    t.match(authorization, /\balgorithm=SHA-256\b/, 'with algorithm=SHA-256');
    t.match(authorization, /\bresponse="[0-9a-f]{64}"/, 'a 256-bit response');
    t.match(authorization, /\busername="carol"/, 'as carol');
    t.match(authorization, /\bqop=auth\b/, 'with qop=auth');
    t.equal(header(ok, 'CSeq'), header(authed, 'CSeq'), 'the 200 answers that REGISTER');

    // 2. outbound: +sip.instance and reg-id sent, kept and echoed by the node
    const sentContact = header(authed, 'Contact') ?? '';
    const instance = /\+sip\.instance="<(urn:uuid:[0-9a-f-]+)>"/i.exec(sentContact)?.[1];
    t.ok(instance, `Linphone's Contact carries +sip.instance: ${sentContact}`);
    t.match(sentContact, /;reg-id=1\b/, 'and reg-id=1');
    t.match(header(authed, 'Supported') ?? '', /\boutbound\b/, 'Supported: outbound');
    const okContacts = headers(ok, 'Contact');
    t.equal(okContacts.length, 1, `the 200 lists one binding: ${okContacts.join(' | ')}`);
    t.match(okContacts[0] ?? '', /^<sip:carol@127\.0\.0\.1:20000;transport=udp>/, 'Linphone\'s contact');
    t.ok(instance !== undefined && (okContacts[0] ?? '').includes(`+sip.instance="<${instance}>"`), 'with the same +sip.instance');
    t.match(okContacts[0] ?? '', /;reg-id=1\b/, 'and reg-id');
    t.match(okContacts[0] ?? '', /;expires=600\b/, 'for 600 s');
    t.match(header(ok, 'Require') ?? '', /^outbound$/, 'Require: outbound: the node keyed the binding as an RFC 5626 flow');
    await waitFor('linphonec to report the account registered', async () => {
      carol.send('status register');
      await sleep(200);
      return /registered, identity=sip:carol@lin\.test duration=600/.test(carol.output());
    }, 5000, 0);

    // 3. OPTIONS pings answered, binding online on the chain
    const carolName = 'sip:carol@lin.test';
    const bobName = 'sip:bob@b.test';
    const ping = await waitFor('an OPTIONS ping from the node', async () => carol.find('received', /^OPTIONS sip:carol@127\.0\.0\.1:20000\b/), 10_000);
    t.equal(ping.peer, A, 'node A pings Linphone with OPTIONS at its registered contact');
    const pong = await waitFor('Linphone to answer the ping', async () => carol.find('sent', /^SIP\/2\.0 200 /, { cseq: /OPTIONS/, has: new RegExp(`^Call-ID: ${(header(ping, 'Call-ID') ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm') }));
    t.equal(pong.peer, A, 'Linphone answers it 200');

    // the nodes claim their names (commit, then reveal) and bind their phones; with two nodes each
    // learns the other's binding from the chain. Both mine, each node's own records being in its
    // pool first.
    let blocks = 0;
    const carolAtA = await mineUntil(
      async () => {
        await (b === undefined || blocks % 2 === 0 ? a : b).mine(1);
        blocks++;
      },
      `carol online and confirmed${b === undefined ? '' : ', and each node to see the other\'s user online'}`,
      async () => {
        const v = await Promise.all([bindingAt(a, carolName), b === undefined ? null : bindingAt(b, carolName), b === undefined ? null : bindingAt(a, bobName)]);
        const up = (x: Binding | null): boolean => x?.status === 'online' && x.confirmed;
        return up(v[0]) && (b === undefined || (up(v[1]) && up(v[2]))) ? (v[0] as Binding) : undefined;
      },
      { timeoutMs: 30_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${nodeLogs()}${bob === undefined ? '' : `\n--- baresip\n${bob.out().slice(-2000)}`}`);
    });
    t.pass(`carol's binding is online and confirmed on the chain (after ${blocks} blocks)`);
    t.match(a.lines.join('\n'), /presence: sip:carol@lin\.test online until \d+ \(seq \d+\)/, 'A wrote it when the pings were answered (its log: carol online)');
    if (b !== undefined) {
      const [atB, bobAtA] = await Promise.all([bindingAt(b, carolName), bindingAt(a, bobName)]);
      t.equal(atB?.node, carolAtA.node, 'B sees carol online, served by A');
      t.not(bobAtA?.node, carolAtA.node, 'A sees bob online, served by another node, B');
    }

    // 4. Linphone calls bob at B; his baresip answers by itself; Linphone hangs up
    if (b === undefined || bob === undefined) {
      await t.test('a call from Linphone across the nodes', { skip: 'baresip is not installed (apt-get install baresip)' }, () => undefined);
    } else {
      const B = `127.0.0.1:${b.sipPort}`;
      carol.send(`call ${bobName}`);
      await waitFor('the call to be established at Linphone', async () => /Call \d+ with <?sip:bob@b\.test>? connected\./.test(carol.output()), 15_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}${carolTail()}${nodeLogs()}\n--- baresip\n${bob.out().slice(-3000)}`);
      });
      t.pass('Linphone reports the call to bob connected');
      const invite = carol.find('sent', /^INVITE sip:bob@b\.test /);
      t.equal(invite?.peer, A, 'Linphone sent its INVITE to A, its node');
      const answer = carol.find('received', /^SIP\/2\.0 200 /, { cseq: /INVITE/ });
      // the callee copies the INVITE's Record-Route, B's (the last proxy's) on top
      // one entry per side of each node: UDP to its phone, TLS to the other node
      t.same(headers(answer, 'Record-Route'), [`<sip:${B};lr>`, `<sip:127.0.0.1:${b.tlsPort};transport=tls;lr>`, `<sip:127.0.0.1:${a.tlsPort};transport=tls;lr>`, `<sip:${A};lr>`], 'the 200 comes back through both nodes (Record-Route B, A)');
      await waitFor('bob\'s baresip to report the call established', async () => /Call established|CALL_ESTABLISHED/i.test(bob.out()), 5000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n--- baresip\n${bob.out().slice(-3000)}`);
      });
      t.match(bob.out(), /^INVITE sip:bob-?[^@\s]*@127\.0\.0\.1:20002\b/m, 'bob\'s phone got the INVITE at its contact');
      t.match(carol.output(), /Media streams established with <?sip:bob@b\.test>? for call \d+ \(audio\)/, 'Linphone reports the audio stream up');
      t.match(carol.log(), /Negotiated media encryption is LinphoneMediaEncryptionSRTP/, 'Linphone negotiated SRTP');
      t.match(bob.out(), /SRTP is Enabled \(cryptosuite=AES_CM_128_HMAC_SHA1_80\)/, 'baresip too (AES_CM_128_HMAC_SHA1_80)');
      // media goes straight between the phones: Linphone's RTP port (20100) is in its offer
      const rtp = await waitFor('baresip to receive Linphone\'s SRTP', async () => /incoming rtp for 'audio' established, receiving from (\S+)/.exec(bob.out())?.[1], 8000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n--- baresip\n${bob.out().slice(-3000)}`);
      });
      t.equal(rtp, '127.0.0.1:20100', 'baresip receives SRTP straight from Linphone\'s RTP port');
      await sleep(1000);
      carol.send('terminate');
      await waitFor('the call to end at Linphone', async () => /Call \d+ with <?sip:bob@b\.test>? ended/.test(carol.output()), 10_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}${carolTail()}`);
      });
      // at the end of a call Linphone logs the stream's RTP statistics
      const received = await waitFor('Linphone\'s RTP statistics', async () => /RTP STATISTICS[\s\S]*?\breceived\s+(\d+) packets/.exec(carol.log())?.[1], 5000);
      t.ok(Number(received) > 0, `Linphone received ${received} SRTP packets from baresip`);
      const bye = carol.find('sent', /^BYE /);
      t.equal(bye?.peer, A, 'Linphone sent its BYE to A (the route set)');
      await waitFor('the 200 to the BYE', async () => carol.find('received', /^SIP\/2\.0 200 /, { cseq: /BYE/ }), 5000);
      t.pass('bob\'s phone answered the BYE (200, back through the nodes)');
    }

    // 5. quit: Linphone unregisters; the binding turns offline, and is confirmed in a block
    const before = carol.traced().length;
    const quitted = await carol.quit(8000);
    t.ok(quitted, 'linphonec exits on quit');
    const after = carol.traced().slice(before - 1);
    const unreg = after.find((m) => m.dir === 'sent' && /^REGISTER /.test(m.text) && /^Expires: 0$/m.test(m.text));
    t.ok(unreg, 'Linphone sent a REGISTER with Expires: 0');
    t.match(header(unreg, 'Authorization') ?? '', /\balgorithm=SHA-256\b/, 'authenticated with SHA-256 again');
    t.match(header(unreg, 'Contact') ?? '', new RegExp(`\\+sip\\.instance="<${instance ?? 'none'}>"`), 'for the same instance');
    const unregOk = after.find((m) => m.dir === 'received' && /^SIP\/2\.0 200 /.test(m.text) && header(m, 'CSeq') === header(unreg, 'CSeq'));
    t.ok(unregOk, 'the node answered 200');
    t.same(headers(unregOk, 'Contact'), [], 'with no binding left');
    const off = await waitFor('carol offline at A', async () => {
      const x = await bindingAt(a, carolName);
      return x?.status === 'offline' ? x : undefined;
    }, 5000);
    t.ok(off.seq > (carolAtA?.seq ?? 0), 'offline written with a higher sequence');
    await a.mine(1);
    await waitFor(`carol offline confirmed${b === undefined ? '' : ', as B sees it too'}`, async () => {
      const x = await Promise.all([bindingAt(a, carolName), b === undefined ? null : bindingAt(b, carolName)]);
      return x.every((y, i) => (i === 1 && b === undefined) || (y?.status === 'offline' && y.confirmed));
    }, 10_000);
    t.pass('carol\'s binding is offline in a block');
    t.comment(`took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  t.test('Linphone over TLS: registers with SHA-256 digest, calls a baresip on TLS at another node', { skip: has('baresip') ? false : 'baresip is not installed (apt-get install baresip)' }, async (t) => {
    const dir = tmpDir(t);
    const h = new Harness(t);
    const carolAcc = { user: 'carol', domain: 'lin.test', password: 'carol-Secret-1' };
    const bobAcc = { user: 'bob', domain: 'b.test', password: 'bob-Secret-1' };
    for (const [acc, node] of [[carolAcc, 'A'], [bobAcc, 'B']] as const) {
      const r = await runDots(['user', 'add', acc.user, '--password', acc.password, '--datadir', join(dir, node), '--domain', acc.domain]);
      t.equal(r.code, 0, `account ${acc.user}@${acc.domain} created${r.code === 0 ? '' : ': ' + r.stderr}`);
    }
    const a = await h.start('A', { datadir: join(dir, 'A'), args: ['--domain', carolAcc.domain, '--sip-keepalive', '2', '--require-tls'] });
    const b = await h.start('B', { datadir: join(dir, 'B'), bootstrap: [a.p2p], args: ['--domain', bobAcc.domain, '--sip-keepalive', '2', '--require-tls'] });
    const A = `127.0.0.1:${a.tlsPort}`;
    const nodeLogs = (): string => `\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`;
    const carol = Linphone.start(t, dir, { ...carolAcc, nodePort: a.tlsPort, sipPort: 20_004, rtpPort: 20_200, tls: true });
    const bob = startBaresip(t, dir, { ...bobAcc, nodePort: b.tlsPort, tls: true, sipPort: 20_006, rtpPorts: '30200-30300', trace: true });
    const carolTail = (): string => `\n--- linphonec console\n${carol.output().slice(-1500)}\n--- Linphone's SIP log (last messages)\n${carol.traced().slice(-6).map((m) => `[${m.dir} ${m.peer}]\n${m.text}`).join('\n')}`;
    const ok = await waitFor('Linphone registered over TLS', async () => carol.find('received', /^SIP\/2\.0 200 /, { cseq: /REGISTER/ }), 20_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${carolTail()}${nodeLogs()}`);
    });
    t.equal(ok.peer, A, "Linphone's REGISTER went to A's TLS port, and was answered 200");
    t.match(carol.log(), new RegExp(`message sent to \\[TLS://${A.replace(/\./g, '\\.')}\\]`), 'over TLS (its log names the transport)');
    t.match(header(carol.find('sent', /^REGISTER /, { has: /^Authorization:/m }), 'Authorization') ?? '', /\balgorithm=SHA-256\b/, 'with SHA-256 digest');
    let blocks = 0;
    await mineUntil(
      () => (blocks++ % 2 === 0 ? a : b).mine(1),
      'each node to see the other phone online',
      async () => (await bindingAt(b, 'sip:carol@lin.test'))?.status === 'online' && (await bindingAt(a, 'sip:bob@b.test'))?.status === 'online',
      { timeoutMs: 45_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${nodeLogs()}\n--- baresip\n${bob.out().slice(-2000)}`);
    });
    carol.send('call sip:bob@b.test');
    await waitFor('the call to be established at Linphone', async () => /Call \d+ with <?sip:bob@b\.test>? connected\./.test(carol.output()), 15_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${carolTail()}${nodeLogs()}\n--- baresip\n${bob.out().slice(-3000)}`);
    });
    t.pass('Linphone reports the call to bob connected');
    const answer = carol.find('received', /^SIP\/2\.0 200 /, { cseq: /INVITE/ });
    t.same(headers(answer, 'Record-Route'), [`<sip:127.0.0.1:${b.tlsPort};transport=tls;lr>`, `<sip:${A};transport=tls;lr>`], 'TLS all the way: one Record-Route per node, each its TLS side');
    t.match(carol.log(), /Negotiated media encryption is LinphoneMediaEncryptionSRTP/, 'SRTP, its keys carried over TLS only');
    await sleep(1000);
    carol.send('terminate');
    await waitFor('the 200 to the BYE', async () => carol.find('received', /^SIP\/2\.0 200 /, { cseq: /BYE/ }), 10_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${carolTail()}`);
    });
    t.pass("bob's phone answered the BYE, back through the nodes over TLS");
  });
});
