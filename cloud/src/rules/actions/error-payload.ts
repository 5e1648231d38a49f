import type { PreparedMessage } from '../../core/iotsql/index.js';

/** One failed action, as IoT Core lists it in an error action's payload. */
export interface RuleFailure {
  readonly failedAction: string;
  readonly failedResource: string;
  readonly errorMessage: string;
}

/**
 * The payload IoT Core hands a rule's error action: one per rule and message, listing every
 * action of the rule that failed for that message ("Error action message format" in the AWS IoT
 * developer guide).
 */
export interface RuleErrorPayload {
  readonly ruleName: string;
  readonly topic: string;
  /** Locally a fresh UUID per failure, to find the matching log lines (AWS: a CloudWatch trace id). */
  readonly cloudwatchTraceId: string;
  /** The publisher's client id; `n/a` for messages without one (in-process or HTTP publishes). */
  readonly clientId: string;
  /** The message's payload as it arrived, base64. */
  readonly base64OriginalPayload: string;
  readonly failures: readonly RuleFailure[];
}

export function ruleErrorPayload(
  ruleName: string,
  message: PreparedMessage,
  failures: readonly RuleFailure[],
  traceId: string,
): RuleErrorPayload {
  return {
    ruleName,
    topic: message.topic,
    cloudwatchTraceId: traceId,
    clientId: message.clientId ?? 'n/a',
    base64OriginalPayload: Buffer.from(message.bytes).toString('base64'),
    failures,
  };
}
