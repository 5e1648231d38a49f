import { type ChildProcess, spawn } from 'node:child_process';

/**
 * A program of the workspace as a child process, for tests and benchmarks that need what only a
 * process has (exit codes, signals, `kill -9`, its own event loop): its output collected as it
 * arrives, waiting (bounded) on what it prints or on its exit, and every child tracked so
 * `killLaunched()` in `afterAll` leaves none behind.
 *
 * A bin's launcher (`<pkg>/bin/*.js`) runs the package's TypeScript source through tsx with the
 * `@pifleet/source` export condition itself; a `.ts` entry is started the same way here.
 *
 * Here, in cloud's testing entry, because cloud's own suites launch its bin and cloud may import
 * only @pifleet/protocol; @pifleet/testkit re-exports it for every other package.
 */

export interface BinExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LaunchOptions {
  readonly args?: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** What becomes of stderr: collected (default), or passed through to this process's. */
  readonly stderr?: 'collect' | 'inherit';
  /** A name for messages (default: the file's name). */
  readonly name?: string;
}

export interface LaunchedBin {
  readonly child: ChildProcess;
  readonly name: string;
  readonly exited: Promise<BinExit>;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far (empty when passed through). */
  stderr(): string;
  /** Stdout and stderr as they interleaved. */
  output(): string;
  /** The complete stdout lines so far. */
  lines(): readonly string[];
  /**
   * Resolves with what `probe` finds, re-checked at every output; rejects when the process exits
   * before, or after `ms`, with the end of the output in the message.
   */
  waitFor<T>(probe: (bin: LaunchedBin) => T | undefined, ms: number, what: string): Promise<T>;
  /** The first stdout line `match` accepts (bounded as `waitFor`). */
  waitForLine(match: (line: string) => boolean, ms: number, what: string): Promise<string>;
  /** Sends `signal` and waits for the exit; SIGKILL if it has not exited after `forceAfterMs`. */
  stop(signal?: NodeJS.Signals, forceAfterMs?: number): Promise<BinExit>;
}

const launched = new Set<ChildProcess>();
/** How much of the output a failure message carries. */
const TAIL = 3_000;

/** Starts `file` (a bin launcher or a `.ts` entry) with Node; waits for nothing. */
export function launchBin(file: string, options: LaunchOptions = {}): LaunchedBin {
  const execArgv = file.endsWith('.ts') ? ['--conditions=@pifleet/source', '--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...execArgv, file, ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', options.stderr === 'inherit' ? 'inherit' : 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  launched.add(child);
  const name = options.name ?? file.split('/').pop() ?? file;
  let stdout = '';
  let stderr = '';
  let output = '';
  const lines: string[] = [];
  let partial = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stdout += text;
    output += text;
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stderr += text;
    output += text;
    wake();
  });
  let exit: BinExit | undefined;
  const exited = new Promise<BinExit>((resolve) => {
    // 'close', not 'exit': by then stdout and stderr are read to their end.
    child.once('close', (code, signal) => {
      launched.delete(child);
      exit = { code, signal };
      resolve(exit);
      wake();
    });
  });

  const bin: LaunchedBin = {
    child,
    name,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    lines: () => lines,
    waitFor<T>(probe: (b: LaunchedBin) => T | undefined, ms: number, what: string): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        const check = () => {
          const found = probe(bin);
          if (found !== undefined) {
            done();
            resolve(found);
          } else if (exit) {
            done();
            reject(new Error(`${name} exited (${exit.code ?? exit.signal}) before ${what}:\n${output.slice(-TAIL)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${what} within ${ms} ms:\n${output.slice(-TAIL)}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    waitForLine(match, ms, what) {
      return bin.waitFor((b) => b.lines().find(match), ms, what);
    },
    async stop(signal = 'SIGTERM', forceAfterMs = 3_000) {
      if (exit) return exit;
      const force = setTimeout(() => child.kill('SIGKILL'), forceAfterMs);
      child.kill(signal);
      try {
        return await exited;
      } finally {
        clearTimeout(force);
      }
    },
  };
  return bin;
}

/** SIGKILLs every launched process still running (for `afterAll`). */
export function killLaunched(): void {
  for (const child of launched) child.kill('SIGKILL');
}
