import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CORE_BIN, type LaunchedBin, type LaunchOptions, launchBin } from '@pifleet/cloud';

/** The workspace's root, where the bins' relative paths (and the demo's `pnpm` scripts) start. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The bins of the workspace's packages (their launchers run the TypeScript source through tsx). */
export const BINS = {
  agent: path.join(REPO, 'device-agent/bin/pifleet-agent.js'),
  localCore: CORE_BIN,
  pifleet: path.join(REPO, 'provisioning/bin/pifleet.js'),
  sim: path.join(REPO, 'simulator/bin/pifleet-sim.js'),
} as const;

/** One JSON log line (pino) as a test reads it. */
export interface LogLine {
  readonly msg?: string;
  readonly time?: number;
  readonly [key: string]: unknown;
}

/** The JSON log lines a launched process wrote to stdout, each parsed once, with waiting on one. */
export interface JsonLog {
  lines(): readonly LogLine[];
  /** The first line with this message. */
  find(msg: string): LogLine | undefined;
  /** The first line `match` accepts, re-checked as lines arrive; rejects on exit or after `ms`. */
  waitFor(match: (line: LogLine) => boolean, ms: number, what: string): Promise<LogLine>;
}

export function jsonLog(bin: LaunchedBin): JsonLog {
  const parsed: LogLine[] = [];
  let read = 0;
  const lines = () => {
    const all = bin.lines();
    for (; read < all.length; read++) {
      const line = all[read] ?? '';
      // Anything else on stdout (a warning, a stack) stays in the bin's text only.
      if (!line.startsWith('{')) continue;
      try {
        parsed.push(JSON.parse(line) as LogLine);
      } catch {
        // a line cut short by a kill
      }
    }
    return parsed;
  };
  return {
    lines,
    find: (msg) => lines().find((l) => l.msg === msg),
    waitFor: (match, ms, what) => bin.waitFor(() => lines().find(match), ms, what),
  };
}

export type SimAgent = LaunchedBin & { readonly log: JsonLog };

/**
 * `pifleet-sim agent --config FILE` (the agent runtime on simulated hardware, the composition of
 * `pifleet-agent run` with simulated chips) as a process, with its JSON log.
 */
export function launchSimAgent(configFile: string, options: Omit<LaunchOptions, 'args'> = {}): SimAgent {
  const bin = launchBin(BINS.sim, {
    cwd: REPO,
    name: 'pifleet-sim agent',
    ...options,
    args: ['agent', '--config', configFile],
  });
  return Object.assign(bin, { log: jsonLog(bin) });
}
