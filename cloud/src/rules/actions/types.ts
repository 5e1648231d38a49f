import type { MessageProperties } from '../../broker/properties.js';
import type { EvalContext, PreparedMessage, RuleOutput } from '../../core/iotsql/index.js';

/**
 * A rule action compiled once at load: its substitution templates are parsed, its target is
 * resolved. `run` carries it out for one message and throws a {@link RuleActionError} when it
 * cannot (never anything else: other failures are wrapped).
 */
export interface CompiledAction {
  /** IoT Core's name of the action in failure payloads, e.g. `LambdaAction`, `S3Action`. */
  readonly awsName: string;
  run(input: ActionInput): Promise<void>;
  /**
   * For an action that buffers (the archive stream): writes what it holds, and resolves with the
   * number of records it still holds because their write failed. The engine calls it on
   * `flushArchive()`, when its rule is removed, and on stop.
   */
  flush?(): Promise<number>;
}

export interface ActionInput {
  /** The message the rule matched (what substitution templates are evaluated against). */
  readonly message: PreparedMessage;
  /** The rule's SELECT output (for an error action: the failure payload). */
  readonly output: RuleOutput;
  readonly ctx: EvalContext;
}

/** A handler a lambda action invokes in process: the event is the SELECT output, as Lambda would receive it. */
export type InProcessHandler = (event: unknown) => Promise<unknown>;

/** The broker side a republish action needs. */
export interface RepublishTarget {
  publish(topic: string, payload: Uint8Array, options: { qos: 0 | 1; properties?: MessageProperties }): Promise<void>;
}
