#!/usr/bin/env -S node --max-semi-space-size=32
// The `dots` executable: loads the TypeScript sources through tsx, then runs the CLI.
// The first line gives V8 a young generation of up to 64 MB (32 by default): a busy node makes
// short-lived objects for every SIP message, and with the default they were collected, and the
// survivors promoted, twice as often; `dots bench sip` measured 36,000 REGISTER/s with it against
// 30,000 without (two runs each), and 0.45-0.47 of a core at 16,000/s against 0.52-0.60.
// Started as `node bin/dots.js`, the flag is not applied: give it to node yourself
// (test/util/proc.ts reads it from here).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
