// Waiting for something to become true, for tests and benchmarks: `waitFor` polls an async
// function until it returns a value (a node's API, a phone's state); `until` and `eventually`
// poll a synchronous predicate (in-process state), the first failing with a message, the second
// answering whether it held so that a test can assert it.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

/** Polls `cond` until it holds (or `timeoutMs` pass); returns whether it held. */
export async function eventually(cond: () => boolean, timeoutMs = 20_000, everyMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 20_000, everyMs = 10): Promise<void> {
  if (!(await eventually(cond, timeoutMs, everyMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
