import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { asertNextBits } from '../consensus/asert.ts';
import type { AsertAnchor, AsertParams } from '../consensus/asert.ts';

// Parameters the published vectors were generated with (see fixtures README).
const PARAMS: AsertParams = { idealBlockTime: 600, halfLife: 172800, powLimitBits: 0x1d00ffff };
const DIR = fileURLToPath(new URL('./fixtures/asert/', import.meta.url));

interface Vector {
  lineNo: number;
  height: bigint;
  time: number;
  bits: number;
}

function parseRun(text: string, file: string): { anchor: AsertAnchor; vectors: Vector[] } {
  let height: bigint | undefined;
  let parentTime: number | undefined;
  let bits: number | undefined;
  const vectors: Vector[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    if (line.startsWith('##')) {
      // Files disagree on "ancestor" vs "parent" wording for the same field.
      const m = /^##\s*anchor\s+(height|ancestor time|parent time|nBits):\s*(\S+)\s*$/.exec(line);
      if (m) {
        if (m[1] === 'height') height = BigInt(m[2]);
        else if (m[1] === 'nBits') bits = Number.parseInt(m[2], 16);
        else parentTime = Number(m[2]);
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^(\d+)\s+(-?\d+)\s+(-?\d+)\s+0x([0-9a-fA-F]{1,8})$/.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: unparseable vector line: ${line}`);
    vectors.push({ lineNo: i + 1, height: BigInt(m[2]), time: Number(m[3]), bits: Number.parseInt(m[4], 16) });
  }
  if (height === undefined || parentTime === undefined || bits === undefined) {
    throw new Error(`${file}: missing anchor header (height=${height}, parentTime=${parentTime}, bits=${bits})`);
  }
  return { anchor: { height, parentTime, bits }, vectors };
}

const files = readdirSync(DIR).filter((f) => /^run\d+$/.test(f)).sort();

t.equal(files.length, 12, 'all twelve run files are present');

for (const file of files) {
  t.test(file, (t) => {
    const { anchor, vectors } = parseRun(readFileSync(join(DIR, file), 'utf8'), file);
    if (vectors.length === 0) throw new Error(`${file}: zero vector lines parsed`);
    let failures = 0;
    for (const v of vectors) {
      const got = asertNextBits(PARAMS, anchor, v.height, v.time);
      // One assertion per line; a wrong rule would fail thousands of lines, so
      // stop reporting after a few to keep the output readable (still failing).
      if (got !== v.bits && ++failures > 5) {
        t.fail(`${file}: more failures omitted`);
        break;
      }
      t.equal(
        '0x' + got.toString(16).padStart(8, '0'),
        '0x' + v.bits.toString(16).padStart(8, '0'),
        `${file}:${v.lineNo} height ${v.height} time ${v.time}`,
      );
    }
    t.end();
  });
}

t.test('number heights give the same result as bigint heights', (t) => {
  const anchor: AsertAnchor = { height: 1, parentTime: 0, bits: 0x1802aee8 };
  t.equal(asertNextBits(PARAMS, anchor, 3, 1310), asertNextBits(PARAMS, { ...anchor, height: 1n }, 3n, 1310));
  t.equal(asertNextBits(PARAMS, anchor, 3, 1310), 0x1802ad91);
  t.end();
});

t.test('extreme inputs clamp instead of blowing up', (t) => {
  const anchor: AsertAnchor = { height: 1, parentTime: 0, bits: 0x1802aee8 };
  t.equal(asertNextBits(PARAMS, anchor, 2, 2 ** 52), 0x1d00ffff, 'far-future time clamps to the limit');
  t.equal(asertNextBits(PARAMS, anchor, 2 ** 52, 0), 0x01010000, 'huge height gap bottoms out at target 1');
  t.throws(() => asertNextBits(PARAMS, anchor, 0, 0), 'tip below anchor is rejected');
  t.throws(() => asertNextBits(PARAMS, { ...anchor, bits: 0x1e00ffff }, 2, 0), 'anchor above limit rejected');
  t.end();
});
