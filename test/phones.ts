// Helpers for the tests that drive real phones (baresip, Linphone, SIPp, the browser phone in
// Chromium) against `dots node` processes: a user's wallet, re-running a test file inside a
// network namespace of its own, baresip configured as ../shared/phones/README.md says (started,
// and driven over ctrl_tcp with its SIP trace read back), and the node's phone page in a
// headless Chromium. What the chain says of names is in util/names.ts.
// Processes are only ever signalled through their own ChildProcess handles, never by name.
import tap, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchChromium } from './util/chromium.ts';
import { has, runDots, stopProcess } from './util/proc.ts';
import type { Teardown } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';

/** A user's wallet made with `dots wallet new` (regtest): its file, public key and the passphrase environment. */
export async function newWallet(t: Test, file: string): Promise<{ file: string; pub: string; env: Record<string, string>; args: string[] }> {
  const env = { DOTS_PASSPHRASE: 'a user wallet passphrase' };
  const made = await runDots(['wallet', 'new', '--wallet', file, '--network', 'regtest'], 20_000, env);
  t.equal(made.code, 0, made.stderr);
  const pub = /pubkey\s+([0-9a-f]{66})/.exec(made.stdout)?.[1] ?? '';
  t.equal(pub.length, 66, 'the wallet prints its public key');
  return { file, pub, env, args: ['--wallet', file, '--network', 'regtest'] };
}

/**
 * Runs `body` (which declares the file's tests) inside a network namespace of its own, loopback
 * only (`unshare -n`): phones open DNS and RTP sockets on every interface. Outside one, the test
 * file declares a single test, `title`, that re-runs itself (`file`: its import.meta.url) there,
 * with DOTS_IN_NETNS=1; it is skipped when `needs` (or unshare and ip) are not installed
 * (`install`: the apt package hint) or the namespace cannot be created. `setup`: shell commands
 * run in the namespace after `ip link set lo up`.
 */
export function inNetworkNamespace(o: { file: string; title: string; needs: string[]; install: string; setup?: string[] }, body: () => void): void {
  if (process.env.DOTS_IN_NETNS === '1') {
    body();
    return;
  }
  const missing = [...o.needs, 'unshare', 'ip'].filter((c) => !has(c));
  const canUnshare = missing.length === 0 && spawnSync('unshare', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  const skip = missing.length > 0 ? `${missing.join(', ')} not installed (apt-get install ${o.install})` : !canUnshare ? 'cannot create a network namespace (unshare -n needs root)' : false;
  tap.test(o.title, { skip }, async (t) => {
    const setup = ['ip link set lo up', ...(o.setup ?? []), 'exec "$@"'].join(' && ');
    await t.spawn('unshare', ['-n', '--', 'sh', '-c', setup, 'sh', process.execPath, ...process.execArgv, fileURLToPath(o.file)], {
      env: { ...process.env, DOTS_IN_NETNS: '1' },
    });
  });
}

export interface BaresipOptions {
  user: string;
  domain: string;
  password: string;
  /** the node's SIP port: the account's outbound proxy */
  nodePort: number;
  /** register and call over TLS: `nodePort` (and `nodePort2`) are then the nodes' TLS ports */
  tls?: boolean;
  /**
   * a second node's SIP port: `outbound2`, with `sipnat=outbound` so that the phone registers
   * at both at once, one RFC 5626 flow each (reg-id 1 and 2), and stays registered at one when
   * the other dies
   */
  nodePort2?: number;
  /** the phone's own SIP port (it binds TLS on the next one too) */
  sipPort: number;
  /** quit after this many seconds (`-t`; default 120): it unregisters */
  seconds?: number;
  /** print a SIP trace (`-s`) */
  trace?: boolean;
  /** `rtp_ports`, e.g. '30000-30100' */
  rtpPorts?: string;
  /** listen for commands on this TCP port (ctrl_tcp) */
  ctrlPort?: number;
  /** media as WebRTC browsers make it: ICE, DTLS-SRTP and RTP/RTCP on one port, instead of SDES */
  webrtc?: boolean;
}

export interface Baresip {
  child: ChildProcess;
  /** What baresip printed: its standard output (the SIP trace included), then its standard error. */
  out: () => string;
  exited: Promise<void>;
  /** SIGTERM, then SIGKILL after 2 s; also done in teardown. */
  stop: () => Promise<void>;
}

/**
 * Writes a config folder (DIR/baresip-USER: `config` and `accounts`) and starts baresip, which
 * registers USER with the node, answers calls by itself (answermode=auto) and requires SRTP.
 */
export function startBaresip(t: Teardown, dir: string, o: BaresipOptions): Baresip {
  const cfg = join(dir, `baresip-${o.user}`);
  const tp = o.tls === true ? 'tls' : 'udp';
  mkdirSync(cfg, { recursive: true });
  writeFileSync(
    join(cfg, 'config'),
    [
      'poll_method epoll',
      `sip_listen 127.0.0.1:${o.sipPort}`,
      ...(o.rtpPorts === undefined ? [] : [`rtp_ports ${o.rtpPorts}`]),
      'audio_source ausine,440',
      `audio_player aubridge,${o.user}`,
      'module_path /usr/lib/baresip/modules',
      'module g711.so',
      'module opus.so',
      'module ausine.so',
      'module aubridge.so',
      'module srtp.so',
      ...(o.webrtc === true ? ['rtcp_mux yes', 'module ice.so', 'module dtls_srtp.so'] : []),
      // the instance id (+sip.instance) outbound needs is made before the accounts are read
      'module uuid.so',
      'module account.so',
      'module_app menu.so',
      ...(o.ctrlPort === undefined ? [] : ['module_app ctrl_tcp.so', `ctrl_tcp_listen 127.0.0.1:${o.ctrlPort}`]),
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(cfg, 'accounts'),
    `<sip:${o.user}@${o.domain};transport=${tp}>;auth_pass=${o.password};outbound="sip:127.0.0.1:${o.nodePort};transport=${tp}";` +
      (o.nodePort2 === undefined ? '' : `outbound2="sip:127.0.0.1:${o.nodePort2};transport=${tp}";sipnat=outbound;`) +
      `regint=600;answermode=auto;${o.webrtc === true ? 'medianat=ice;mediaenc=dtls_srtp' : 'mediaenc=srtp-mand'};audio_codecs=opus/48000/2\n`,
  );
  const child = spawn('baresip', ['-f', cfg, '-n', '127.0.0.1', ...(o.trace === true ? ['-s'] : []), '-t', String(o.seconds ?? 120)], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Kept apart: baresip's errors on stderr end in the colour reset that ends a traced message
  // (traced() below), so one written while the trace printed a message on stdout, merged at the
  // chunk it came in, cut that message short (a 200 OK read without its SDP's candidates).
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const out = (): string => (stderr === '' ? stdout : `${stdout}\n--- stderr\n${stderr}`);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = (): Promise<void> => stopProcess(child, 2000);
  t.teardown(stop);
  return { child, out, exited, stop };
}

/** A baresip event or command response, as ctrl_tcp sends it (one JSON object per netstring). */
export interface CtrlMessage {
  event?: boolean;
  response?: boolean;
  type?: string;
  class?: string;
  ok?: boolean;
  data?: string;
  token?: string;
  accountaor?: string;
  direction?: string;
  peeruri?: string;
  param?: string;
  id?: string;
}

/** A baresip phone configured as ../shared/phones/README.md says, driven over ctrl_tcp. */
export class BaresipPhone {
  readonly messages: CtrlMessage[] = [];
  private sock: Socket | null = null;
  private buf = Buffer.alloc(0);
  private tokens = 0;

  private constructor(
    readonly user: string,
    readonly domain: string,
    private readonly baresip: Baresip,
    readonly ctrlPort: number,
  ) {}

  /** Writes the config folder and starts baresip (with a SIP trace: `-s`). */
  static start(t: Teardown, dir: string, o: BaresipOptions & { ctrlPort: number }): BaresipPhone {
    const phone = new BaresipPhone(o.user, o.domain, startBaresip(t, dir, { ...o, trace: true }), o.ctrlPort);
    t.teardown(() => phone.stop());
    return phone;
  }

  /** What baresip printed: its standard output (the SIP trace included), then its standard error. */
  output(): string {
    return this.baresip.out();
  }

  get aor(): string {
    return `sip:${this.user}@${this.domain}`;
  }

  /** Connects to ctrl_tcp (retrying while baresip starts). */
  async control(): Promise<void> {
    this.sock = await waitFor(
      `${this.user}'s ctrl_tcp on port ${this.ctrlPort}`,
      () =>
        new Promise<Socket | undefined>((resolve) => {
          const s = connect(this.ctrlPort, '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        }),
      10_000,
      100,
    );
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.sock.on('error', () => undefined);
  }

  /** Netstrings: LENGTH ":" JSON ",". */
  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const colon = this.buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.buf.subarray(0, colon).toString('latin1'));
      if (!Number.isInteger(len) || len < 0) throw new Error(`${this.user}: bad netstring from ctrl_tcp: ${this.buf.toString('latin1').slice(0, 80)}`);
      if (this.buf.length < colon + 1 + len + 1) return;
      const text = this.buf.subarray(colon + 1, colon + 1 + len).toString('utf8');
      this.buf = this.buf.subarray(colon + 1 + len + 1);
      try {
        this.messages.push(JSON.parse(text) as CtrlMessage);
      } catch {
        this.messages.push({ type: 'UNPARSABLE', param: text });
      }
    }
  }

  /** Sends a command; resolves with its response. */
  async command(command: string, params = ''): Promise<CtrlMessage> {
    if (this.sock === null) throw new Error(`${this.user}: not connected to ctrl_tcp`);
    const token = `${this.user}-${++this.tokens}`;
    const json = Buffer.from(JSON.stringify({ command, params, token }), 'utf8');
    this.sock.write(Buffer.concat([Buffer.from(`${json.length}:`), json, Buffer.from(',')]));
    return waitFor(`${this.user}: response to ${command}`, async () => this.messages.find((m) => m.response === true && m.token === token), 5000);
  }

  /** The first event of `type` (for the call, if one is named). */
  event(type: string): CtrlMessage | undefined {
    return this.messages.find((m) => m.event === true && m.type === type);
  }

  async waitEvent(type: string, timeoutMs = 10_000): Promise<CtrlMessage> {
    return waitFor(`${this.user}: ${type}`, async () => this.event(type), timeoutMs).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; events so far: ${this.events().join(' ')}\n--- ${this.user}'s output (tail)\n${this.output().slice(-3000)}`);
    });
  }

  events(): string[] {
    return this.messages.filter((m) => m.event === true).map((m) => m.type ?? '?');
  }

  async stop(): Promise<void> {
    this.sock?.destroy();
    await this.baresip.stop();
  }
}

/** One SIP message of a baresip trace (`-s`): "ESC[36;1m#", "UDP SRC -> DST", the message, "ESC[;m". */
export interface Traced {
  src: string;
  dst: string;
  text: string;
}

export function traced(out: string): Traced[] {
  const msgs: Traced[] = [];
  for (const part of out.split('\x1b[36;1m#\n').slice(1)) {
    const m = /^\w+ (\S+) -> (\S+)\n([\s\S]*?)(?:\x1b\[;m|$)/.exec(part);
    if (m !== null) msgs.push({ src: m[1], dst: m[2], text: m[3] });
  }
  return msgs;
}

/** The first traced message matching `start` (its first line) and `o`. */
export function find(out: string, start: RegExp, o: { src?: string; dst?: string; cseq?: RegExp } = {}): Traced | undefined {
  return traced(out).find((m) => start.test(m.text) && (o.src === undefined || m.src === o.src) && (o.dst === undefined || m.dst === o.dst) && (o.cseq === undefined || o.cseq.test(/^CSeq:(.*)$/im.exec(m.text)?.[1] ?? '')));
}

/**
 * The node's phone page (/phone/) in a headless Chromium of its own (Debian's, through
 * playwright-core), read and driven by its element ids as a user would. DOTS_TEST_DEBUG=1
 * prints JsSIP's log as test comments.
 */
export class BrowserPhone {
  private constructor(
    readonly user: string,
    readonly page: Page,
  ) {}

  /** `acceptCertificate`: take the node's self-signed certificate, as a user who clicks through the warning once does */
  static async open(t: Test, user: string, o: { acceptCertificate?: boolean } = {}): Promise<BrowserPhone> {
    const ctx = await launchChromium(t, { name: user, media: true, acceptCertificate: o.acceptCertificate });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('pageerror', (e) => t.comment(`${user}'s page: ${e.message}`));
    if (process.env.DOTS_TEST_DEBUG === '1') {
      await page.addInitScript({ content: "localStorage.setItem('debug', 'JsSIP:Transport JsSIP:RTCSession')" });
      page.on('console', (m) => t.comment(`${user}: ${m.text()}`));
    }
    return new BrowserPhone(user, page);
  }

  /** Opens the page at `url` and signs in with the account; resolves once the form is sent (see `registered`). */
  async signIn(url: string, password: string): Promise<void> {
    await this.page.goto(url);
    await this.page.locator('#signin').waitFor({ state: 'visible', timeout: 10_000 });
    await this.page.fill('#signin [name=user]', this.user);
    await this.page.fill('#signin [name=password]', password);
    await this.page.click('#signin button[type=submit]');
  }

  async registered(timeoutMs = 15_000): Promise<void> {
    await waitFor(`${this.user} registered`, async () => (await this.state('#state')) === 'registered', timeoutMs).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}: ${await this.text('#state')}`);
    });
  }

  async dial(target: string): Promise<void> {
    await this.page.fill('#dial [name=target]', target);
    await this.page.click('#dial button[type=submit]');
  }

  /** The data-state of an element: '#state' (registration) or '#call' (idle, calling, ringing, incoming, established, ended). */
  async state(sel: string): Promise<string> {
    return (await this.page.locator(sel).getAttribute('data-state')) ?? '';
  }

  async text(sel: string): Promise<string> {
    return (await this.page.locator(sel).textContent()) ?? '';
  }

  async callState(state: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(`${this.user}'s call to be ${state}`, async () => (await this.state('#call')) === state, timeoutMs).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}: the page says ${await this.text('#call-state')}`);
    });
  }

  /** The page's packet and byte counters for one direction ('audio-in' or 'audio-out'), from getStats. */
  async counters(id: 'audio-in' | 'audio-out'): Promise<{ packets: number; bytes: number }> {
    const el = this.page.locator(`#${id}`);
    return { packets: Number((await el.getAttribute('data-packets')) ?? 0), bytes: Number((await el.getAttribute('data-bytes')) ?? 0) };
  }

  /** The ICE pair the media flows on: this browser's address and the other end's. */
  async path(): Promise<{ local: string; remote: string }> {
    const el = this.page.locator('#path');
    return { local: (await el.getAttribute('data-local')) ?? '', remote: (await el.getAttribute('data-remote')) ?? '' };
  }

  click(sel: string): Promise<void> {
    return this.page.click(sel);
  }
}
