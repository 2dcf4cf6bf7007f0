// What a node's API says of names and nodes, for the tests and benchmarks that run `dots node`
// processes: a name's binding, owner and serving nodes, a node's id once announced, and mining
// one block at a time until something holds (the presence bridge needs blocks for commit,
// reveal and binding).
import { getJson } from './proc.ts';
import { sleep, waitFor } from './wait.ts';

/** A name's binding on the chain, as GET /api/names/NAME reports it. */
export interface Binding {
  node: string;
  status: string;
  confirmed: boolean;
  seq: number;
}

/** The binding `n` (a node: its API URL) knows for `name`; null when it knows none. */
export async function bindingAt(n: { api: string }, name: string): Promise<Binding | null> {
  const r = await getJson<{ binding: Binding | null }>(`${n.api}/api/names/${encodeURIComponent(name)}`);
  return r.status === 200 ? r.body.binding : null;
}

/** What GET /api/names/NAME says of a name's owner and serving nodes. */
export interface NameView {
  owner: string | null;
  delegates: string[];
  bindings: Array<{ node: string; status: string }>;
}

/** The name as `n` (a node: its API URL) sees it; null when it knows none. */
export async function nameAt(n: { api: string }, name: string): Promise<NameView | null> {
  const r = await getJson<NameView>(`${n.api}/api/names/${encodeURIComponent(name)}`);
  return r.status === 200 ? r.body : null;
}

/** The node id of `n` (by its SIP URI), once its announcement is on the chain `at` follows, mining with `mine` meanwhile. */
export async function nodeIdOf(at: { api: string }, n: { name: string; sip: string }, mine: () => Promise<unknown>): Promise<string> {
  return mineUntil(mine, `${n.name}'s announcement`, async () => {
    const list = (await getJson<{ nodes: Array<{ id: string; sipUris: string[] }> }>(`${at.api}/api/nodes`)).body.nodes;
    return list.find((x) => x.sipUris.some((u) => u.startsWith(n.sip)))?.id;
  }, { timeoutMs: 30_000 });
}

/**
 * Mines one block at a time with `mine` until `fn` holds, waiting `pauseMs` after each block (the
 * bridge batches for 100 ms): the bridge needs blocks for commit, reveal and binding.
 */
export async function mineUntil<T>(
  mine: () => Promise<unknown>,
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  o: { timeoutMs?: number; pauseMs?: number } = {},
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
      await mine();
      await sleep(o.pauseMs ?? 150);
      return undefined;
    },
    o.timeoutMs ?? 15_000,
    0,
  );
}
