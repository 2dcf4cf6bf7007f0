// A running node's HTTP API as a wallet uses it: reads of accounts, names, records and the tip,
// and submission of signed records. Every failure is a UserError that says what to do (start the
// node, pass --api), since the person at the keyboard is the one who can fix it.
import { UserError } from '../core/errors.ts';
import { toHex } from '../core/hash.ts';
import type { Rec } from '../core/records.ts';

export type Json = Record<string, unknown>;

export class NodeApi {
  readonly base: string;

  constructor(base: string) {
    this.base = base.replace(/\/$/, '');
  }

  /** GET (or POST with a JSON body) whatever the node answers, status included. */
  async request(path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, body === undefined ? undefined : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    } catch {
      throw new UserError(`cannot reach a node API at ${this.base} (is dots node running? pass --api URL)`);
    }
    return { status: res.status, body: (await res.json()) as Json };
  }

  /** GET that must succeed. */
  async get(path: string): Promise<Json> {
    const r = await this.request(path);
    if (r.status !== 200) throw new UserError(`node answered ${r.status}: ${String(r.body.error)}`);
    return r.body;
  }

  /** Submits a signed record; its id once pending. `what` names it in the refusal. */
  async submit(rec: Rec, what: string): Promise<string> {
    const r = await this.request('/api/records', { record: toHex(rec.bytes) });
    if (r.status !== 202) throw new UserError(`${what} rejected: ${String(r.body.error)}`);
    return String(r.body.id);
  }

  /** A name as the node sees it (owner, sequence, expiry), or null owner when unclaimed. */
  async name(name: string): Promise<{ seq: number; owner: string | null; expiry: number | null; body: Json | null }> {
    const r = await this.request(`/api/names/${encodeURIComponent(name)}`);
    if (r.status === 404) return { seq: 0, owner: null, expiry: null, body: null };
    if (r.status !== 200) throw new UserError(String(r.body.error));
    return { seq: Number(r.body.seq ?? 0), owner: (r.body.owner as string | null) ?? null, expiry: (r.body.expiry as number | null) ?? null, body: r.body };
  }

  async height(): Promise<number> {
    return Number((await this.get('/api/status')).height);
  }
}
