// Writes mining/wasm-sha256d.wasm from its generator (mining/wasm-gen.ts). Run by the
// install (package.json "postinstall") and by `npm run build:wasm`; the file is not committed.
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { createHash } from 'node:crypto';
import { buildSha256dWasm } from '../mining/wasm-gen.ts';
import { WASM_FILE } from '../mining/wasm-hasher.ts';

const bytes = buildSha256dWasm();
writeFileSync(WASM_FILE, bytes);
const sum = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
console.log(`wrote ${relative(process.cwd(), WASM_FILE)} (${bytes.length} bytes, sha256 ${sum}...)`);
