// CPU accounting and pinning for the benchmarks that run servers as processes (`dots bench sip`,
// `dots bench calls`): CPU seconds a process used (/proc/PID/stat), the machine's busy share
// (/proc/stat), a process's children, and running a command on one CPU (taskset).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { has } from '../test/util/proc.ts';

/** CPU seconds [user, system] the processes `pids` used so far; one that is gone counts 0. */
export function cpuTimes(...pids: Array<number | undefined>): [number, number] {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      user += Number(rest[11]); // utime
      sys += Number(rest[12]); // stime
    } catch {
      // gone
    }
  }
  return [user / 100, sys / 100];
}

/** CPU seconds (user + system) the processes `pids` used so far; one that is gone counts 0. */
export function cpuSeconds(...pids: Array<number | undefined>): number {
  const [user, sys] = cpuTimes(...pids);
  return user + sys;
}

/** The pids of `pid`'s children. */
export function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map(Number);
}

/** [busy, total] jiffies of all CPUs so far (/proc/stat), for the machine's load during a window. */
export function machineTicks(): [number, number] {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((x, y) => x + y, 0);
    const idle = f[3] + (f[4] ?? 0);
    return [total - idle, total];
  } catch {
    return [NaN, NaN];
  }
}

/** Whether processes can be pinned: two cores or more, and taskset installed. */
export const CAN_PIN = availableParallelism() >= 2 && has('taskset');

/** `cmd args` to run on CPU `cpu` (taskset), or as it is when `cpu` is null or undefined. */
export function onCpu(cpu: number | null | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === null || cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}
