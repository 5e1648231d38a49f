import { serializeOutput } from '../../core/iotsql/index.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction, InProcessHandler } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes an output the way Lambda receives it: the serialized JSON, parsed again (no shared objects). */
function eventOf(bytes: Uint8Array): { ok: true; event: unknown } | { ok: false } {
  if (bytes.length === 0) return { ok: true, event: {} };
  try {
    return { ok: true, event: JSON.parse(utf8.decode(bytes)) as unknown };
  } catch {
    return { ok: false };
  }
}

/**
 * Lambda action, locally: the named handler runs in process with the SELECT output as its event.
 * A handler that throws is a failed action (see rules/definitions.ts for how this differs from
 * AWS's asynchronous invoke). A payload that is not JSON cannot be a Lambda event.
 */
export function lambdaAction(handlerName: string, handler: InProcessHandler): CompiledAction {
  const awsName = 'LambdaAction';
  return {
    awsName,
    async run({ output }) {
      const decoded = eventOf(serializeOutput(output));
      if (!decoded.ok) {
        throw new RuleActionError(
          awsName,
          handlerName,
          "Failed to invoke lambda function: the payload is not JSON (select encode(*, 'base64') for binary payloads).",
        );
      }
      try {
        await handler(decoded.event);
      } catch (err) {
        const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        throw new RuleActionError(
          awsName,
          handlerName,
          `Function ${handlerName} failed. Received error: ${reason}`,
          err,
        );
      }
    },
  };
}
