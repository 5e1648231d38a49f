import { LIMITS, SHADOW_ERRORS } from '@pifleet/protocol';

/** The size quotas a shadow document is held to (the core's `shadowDocumentBytes` and `shadowDepth`). */
export interface ShadowDocumentLimits {
  /** Bytes of the stored `state` (desired and reported, compact JSON, metadata not counted). */
  readonly maxDocumentBytes: number;
  /** Levels below `desired` or `reported`. */
  readonly maxDepth: number;
}

/** IoT Core's: 8 KB and 6 levels ("AWS IoT Core endpoints and quotas", Device Shadow). */
export const DEFAULT_SHADOW_DOCUMENT_LIMITS: ShadowDocumentLimits = Object.freeze({
  maxDocumentBytes: LIMITS.maxShadowDocumentBytes,
  maxDepth: LIMITS.maxShadowDepth,
});

/** IoT's depth rejection names the maximum; a limits file may set another one. */
export function tooDeepError(maxDepth: number): { code: 400; message: string } {
  return maxDepth === LIMITS.maxShadowDepth
    ? SHADOW_ERRORS.tooDeep
    : { code: 400, message: `JSON contains too many levels of nesting; maximum is ${maxDepth}` };
}
