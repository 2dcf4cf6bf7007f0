// Piscina's entry for a signature worker: the verifier bundled from this process's sources, or
// its TypeScript (core/worker-entry.mjs).
import { loadWorkerModule } from '../core/worker-entry.mjs';

export default (await loadWorkerModule(new URL('./sig-verify.ts', import.meta.url))).verifyBatch;
