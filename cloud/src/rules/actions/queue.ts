/**
 * A bounded work queue: at most `concurrency` tasks run at once; the rest wait in order. The
 * rules engine accepts work without waiting while the queue holds fewer than `highWater` tasks
 * (running or waiting), so publishers are not held up by actions; past it, {@link WorkQueue.room}
 * returns a promise that resolves once the queue has drained to `lowWater`, and the engine hands
 * that promise to the broker, which then holds the publisher's acknowledgement: explicit
 * backpressure instead of unbounded memory or silent drops.
 */
export interface WorkQueue {
  /** Queues a task. Tasks must not throw (a rejection is reported to `onError`). */
  push(task: () => Promise<void>): void;
  /** undefined while below the high-water mark; otherwise a promise for room below the low-water mark. */
  room(): Promise<void> | undefined;
  /** Resolves when nothing runs or waits. */
  idle(): Promise<void>;
  readonly size: number;
  readonly running: number;
}

export interface WorkQueueOptions {
  readonly concurrency: number;
  readonly highWater: number;
  /** Default half the high-water mark. */
  readonly lowWater?: number;
  readonly onError: (err: unknown) => void;
}

export function createWorkQueue(options: WorkQueueOptions): WorkQueue {
  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const highWater = Math.max(1, Math.floor(options.highWater));
  const lowWater = Math.min(highWater - 1, Math.max(0, Math.floor(options.lowWater ?? highWater / 2)));
  const waiting: (() => Promise<void>)[] = [];
  let head = 0;
  let running = 0;
  let roomWaiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];

  const size = () => waiting.length - head + running;

  function settle(): void {
    const n = size();
    if (roomWaiters.length > 0 && n <= lowWater) {
      const wake = roomWaiters;
      roomWaiters = [];
      for (const w of wake) w();
    }
    if (idleWaiters.length > 0 && n === 0) {
      const wake = idleWaiters;
      idleWaiters = [];
      for (const w of wake) w();
    }
  }

  function pump(): void {
    while (running < concurrency && head < waiting.length) {
      const task = waiting[head] as () => Promise<void>;
      waiting[head] = undefined as never;
      head++;
      if (head > 1024 && head * 2 > waiting.length) {
        waiting.splice(0, head);
        head = 0;
      }
      running++;
      let p: Promise<void>;
      try {
        p = task();
      } catch (err) {
        p = Promise.reject(err);
      }
      p.catch(options.onError).finally(() => {
        running--;
        pump();
        settle();
      });
    }
  }

  return {
    push(task) {
      waiting.push(task);
      pump();
    },
    room() {
      if (size() < highWater) return undefined;
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
    idle() {
      if (size() === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    get size() {
      return size();
    },
    get running() {
      return running;
    },
  };
}
