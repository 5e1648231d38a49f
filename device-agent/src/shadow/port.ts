/** What the agent needs from the Device Shadow service (classic shadow of its own thing). */
export interface ShadowView {
  readonly version: number;
  readonly desired?: unknown;
  readonly reported?: unknown;
}

export interface ShadowDelta {
  readonly version: number;
  readonly state: unknown;
}

export interface ShadowService {
  /**
   * The current shadow, or undefined when the thing has none yet (404). Rejects with a
   * `ShadowRejectedError` (another code), a `ShadowTimeoutError`, or a `ShadowError` (no answer).
   */
  get(): Promise<ShadowView | undefined>;
  /** Merges `reported` into `state.reported`. Rejects as `get` does (a 404 too). */
  updateReported(reported: object): Promise<{ version: number | undefined }>;
  /** Follows `/update/delta`; returns the unsubscribe function. */
  onDelta(listener: (delta: ShadowDelta) => void): () => void;
  /**
   * Calls `listener` when the delta stream's subscription is established again (granted after the
   * broker refused or throttled it, or restored after the client lost it): a delta published while
   * it was missing never arrives, so the agent reads the desired state again. Returns the function
   * that stops following.
   */
  onStreamRestored(listener: () => void): () => void;
  /** Releases the service client (and its native resources). */
  close(): void;
}
