// Piscina's worker entry for the miner. The project runs from TypeScript sources through tsx,
// and module hooks registered on the main thread do not reach worker threads on Node 20, so the
// worker registers tsx itself before loading the task (harmless when tsx is already active).
import { register } from 'tsx/esm/api';

register();
const { mine } = await import('./miner-worker.ts');

export default mine;
