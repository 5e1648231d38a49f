/**
 * Runs `worker` over `items` with at most `concurrency` at a time. When `signal` aborts, no new
 * item starts; the ones in flight finish (their results still count) and the function resolves
 * with `aborted: true`. A worker that throws does not stop the others: report failures through
 * the worker's own result.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  worker: (item: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<{ started: number; aborted: boolean }> {
  let next = 0;
  const lanes: Promise<void>[] = [];
  const lane = async () => {
    while (next < items.length && !signal?.aborted) {
      const index = next++;
      await worker(items[index] as T, index);
    }
  };
  for (let i = 0; i < Math.max(1, Math.min(concurrency, items.length)); i++) lanes.push(lane());
  await Promise.all(lanes);
  return { started: next, aborted: signal?.aborted === true && next < items.length };
}
