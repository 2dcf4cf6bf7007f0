// `dots bench NAME`: the benchmarks in bench/, by name.
import { UserError } from '../core/errors.ts';
import { parse } from './args.ts';

export async function runBench(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, seconds: { type: 'string' } }, 1);
  const which = positionals[0] ?? 'all';
  const seconds = values.seconds === undefined ? 2 : Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new UserError('--seconds must be a number from 0 to 600');
  const { runBenchmarks } = await import('../bench/index.ts');
  return runBenchmarks(which, { json: values.json === true, seconds });
}
