// Piscina's entry for a mining worker: the search bundled from this process's sources, or its
// TypeScript (core/worker-entry.mjs).
import { loadWorkerModule } from '../core/worker-entry.mjs';

export default (await loadWorkerModule(new URL('./miner-worker.ts', import.meta.url))).mine;
