// Writes node/phone/jssip.js, the browser phone's SIP stack: JsSIP (a maintained browser SIP
// library, CommonJS on npm) bundled by esbuild into one ES module the page imports. Run by the
// install (package.json "postinstall") and by `npm run build:phone`; the file is not committed.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const OUT = fileURLToPath(new URL('../node/phone/jssip.js', import.meta.url));
const version = (JSON.parse(readFileSync(require.resolve('jssip/package.json'), 'utf8')) as { version: string }).version;

await build({
  entryPoints: [require.resolve('jssip')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  legalComments: 'inline',
  banner: { js: `/* JsSIP ${version} (MIT), bundled by tools/build-phone.ts */` },
  define: { 'process.env.NODE_ENV': '"production"' },
  outfile: OUT,
  logLevel: 'warning',
});
const bytes = readFileSync(OUT);
console.log(`wrote ${relative(process.cwd(), OUT)} (JsSIP ${version}, ${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}...)`);
