// The browser phone's page as the node serves it (node/phone-page.ts): under /phone/ of the API
// beside the explorer, and at the root of the SIP WebSocket port (so `--ws-tls` makes an https
// page and its wss one origin). What a stranger's HTTP client can ask of either: nothing but the
// page's own files (no path leaves them), GET and HEAD only, and a bad URL is a 400, not a crash.
// The browser using it is test/phone-browser.test.ts.
import t from 'tap';
import { request } from 'node:https';
import { DotsNode } from '../node/node.ts';
import { defaultConfig } from '../node/config.ts';
import { silentLogger } from '../core/log.ts';
import { tmpDir } from './util/tmp.ts';
import { runDots } from './util/proc.ts';
import { BrowserPhone } from './phones.ts';
import { chromiumMissing } from './util/chromium.ts';

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: await r.text() };
}

/** A GET over https that takes the node's own (self-signed) certificate. */
function getHttps(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

t.test('the phone page under /phone/ and on the WebSocket port', async (t) => {
  const node = await DotsNode.start({ ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0, p2pPort: 0, sipPort: 0, tlsPort: 0, wsPort: 0, domain: 'phone.test', iceServers: ['stun:stun.example.org:3478'] }, silentLogger);
  t.teardown(() => node.stop());
  const api = node.apiUrl;
  const ws = `http://127.0.0.1:${node.sip?.wsPort ?? 0}`;
  t.ok(node.phone.built, 'JsSIP was bundled at install (tools/build-phone.ts)');

  t.equal((await get(`${api}/phone`, { redirect: 'manual' })).headers.get('location'), '/phone/', '/phone redirects to the page');
  for (const base of [`${api}/phone/`, `${ws}/`]) {
    const page = await get(base);
    t.equal(page.status, 200, `${base} is the page`);
    t.match(page.headers.get('content-type'), /text\/html/);
    t.match(page.headers.get('content-security-policy'), /script-src 'self';.*connect-src 'self' ws: wss:/, 'scripts only from the node; the page may open WebSockets');
    t.match(page.body, /<script type="module" src="phone.js">/);
    for (const f of ['phone.js', 'jssip.js', 'style.css']) {
      const r = await get(base + f);
      t.equal(r.status, 200, `${base}${f}`);
      if (f.endsWith('.js')) t.match(r.headers.get('content-type'), /javascript/, `${f} is served as JavaScript (module scripts need it)`);
    }
    const etag = page.headers.get('etag') ?? '';
    t.equal((await get(base, { headers: { 'if-none-match': etag } })).status, 304, 'the page revalidates by its ETag');
    const config = JSON.parse((await get(base + 'config.json')).body) as unknown;
    t.same(config, { domain: 'phone.test', websocket: { port: node.sip?.wsPort, secure: false }, iceServers: [{ urls: 'stun:stun.example.org:3478' }] }, 'config.json: the domain, the WebSocket, the ICE servers');
    for (const path of ['..%2fnode.key', '%2e%2e/node.key', 'node.key', '../package.json']) {
      t.equal((await get(base + path)).status, 404, `${path}: nothing outside the page's files`);
    }
  }
  t.equal((await get(`${ws}/%E0%A4%A`)).status, 400, 'a bad percent-encoding on the WebSocket port is a 400');
  t.equal((await get(`${ws}/`, { method: 'POST', body: 'x' })).status, 405, 'GET and HEAD only on the WebSocket port');
  const head = await get(`${ws}/`, { method: 'HEAD' });
  t.ok(head.status === 200 && head.body === '', 'HEAD answers without a body');
  t.equal((await get(`${api}/api/status`)).status, 200, 'the node still answers after all that');
});

t.test('a node without SIP over WebSocket says so in config.json; wss serves the page over https', async (t) => {
  const plain = await DotsNode.start({ ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0, p2pPort: 0, sipPort: 0, tlsPort: 0 }, silentLogger);
  t.teardown(() => plain.stop());
  t.same(JSON.parse((await get(`${plain.apiUrl}/phone/config.json`)).body), { domain: plain.config.domain, websocket: null, iceServers: [] }, 'websocket: null (the page tells the user the node needs --ws-port)');
  t.match(plain.describePhone(), /needs --ws-port N/);

  const secure = await DotsNode.start({ ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0, p2pPort: 0, sipPort: 0, tlsPort: 0, wsPort: 0, wsTls: true }, silentLogger);
  t.teardown(() => secure.stop());
  const port = secure.sip?.wsPort ?? 0;
  const page = await getHttps(`https://127.0.0.1:${port}/`);
  t.equal(page.status, 200, 'https://HOST:WSPORT/ is the page (an https origin: browsers give it the microphone)');
  t.match(JSON.parse((await getHttps(`https://127.0.0.1:${port}/config.json`)).body), { websocket: { port, secure: true } }, 'and its SIP is wss on the same origin');
  t.match(secure.describePhone(), new RegExp(`https://127\\.0\\.0\\.1:${port}/ for browsers on other machines`));
});

t.test('a browser on another machine: the https page on the wss port registers over wss (one origin)', async (t) => {
  if (chromiumMissing(t)) return;
  const datadir = tmpDir(t);
  const added = await runDots(['user', 'add', 'carol', '--password', 'carol-secret', '--datadir', datadir, '--domain', 'wss.test']);
  t.equal(added.code, 0, added.stderr);
  const node = await DotsNode.start({ ...defaultConfig('regtest'), datadir, domain: 'wss.test', apiPort: 0, p2pPort: 0, sipPort: 0, tlsPort: 0, wsPort: 0, wsTls: true }, silentLogger);
  t.teardown(() => node.stop());
  const carol = await BrowserPhone.open(t, 'carol', { acceptCertificate: true });
  await carol.signIn(`https://127.0.0.1:${node.sip?.wsPort ?? 0}/`, 'carol-secret');
  await carol.registered();
  t.equal(await carol.text('#me'), 'sip:carol@wss.test', 'registered from the https page, over wss on the same port');
  const bound = node.sip?.registrar.lookup('sip:carol@wss.test') ?? [];
  t.equal(bound[0]?.flow.proto, 'wss', 'the node holds her registration on a wss flow (TLS: --require-tls would take it)');
});
