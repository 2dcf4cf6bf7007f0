// The browser phone's files (node/phone/: the page, its script and style, JsSIP bundled at
// install by tools/build-phone.ts) and its config.json, answered from memory. The API serves them
// under /phone/; the SIP WebSocket port serves them at its root too, because a browser gives a
// page the microphone only over https (or on localhost): `--ws-port N --ws-tls` makes
// https://HOST:N/ the phone and wss://HOST:N its SIP, one origin.
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const DIR = new URL('./phone/', import.meta.url);
const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'phone.js': 'text/javascript; charset=utf-8',
  'jssip.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};
// The page talks to the node's WebSocket (another port, so not 'self' on the API's origin).
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** What the page needs from the node: its domain, its SIP WebSocket (null: none), ICE servers for the browser. */
export interface PhoneConfig {
  domain: string;
  websocket: { port: number; secure: boolean } | null;
  iceServers: Array<{ urls: string }>;
}

export interface PhoneAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

export class PhonePage {
  private readonly files = new Map<string, { body: Buffer; type: string; etag: string }>();

  /** Reads the files once; a node installed without the bundle serves the page, which says what is missing. */
  constructor(private readonly config: () => PhoneConfig) {
    for (const [name, type] of Object.entries(TYPES)) {
      const url = new URL(name, DIR);
      if (!existsSync(url)) continue;
      const body = readFileSync(url);
      this.files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
  }

  /** Whether JsSIP was bundled (npm install runs tools/build-phone.ts). */
  get built(): boolean {
    return this.files.has('jssip.js');
  }

  /** The answer to a GET of `path` (relative to the page: '' is the page itself). */
  answer(path: string, ifNoneMatch?: string): PhoneAnswer {
    const headers: Record<string, string> = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'content-security-policy': CSP };
    if (path === 'config.json') {
      return { status: 200, headers: { ...headers, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, body: JSON.stringify(this.config()) };
    }
    const name = path === '' ? 'index.html' : path;
    const f = this.files.get(name);
    if (f === undefined) {
      const why = name === 'jssip.js' ? 'the phone\'s SIP library is not built on this node (npm run build:phone)' : `no file ${name}`;
      return { status: 404, headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' }, body: `${why}\n` };
    }
    if (ifNoneMatch === f.etag) return { status: 304, headers: { ...headers, etag: f.etag }, body: '' };
    return { status: 200, headers: { ...headers, 'content-type': f.type, etag: f.etag }, body: f.body };
  }

  /** A plain HTTP request on the SIP WebSocket port: GET and HEAD of the page's files at the root. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET the phone page, or open a SIP WebSocket here\n');
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\//, '');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad URL\n');
      return;
    }
    const a = this.answer(path, req.headers['if-none-match']);
    res.writeHead(a.status, a.headers).end(req.method === 'HEAD' ? undefined : a.body);
  }
}
