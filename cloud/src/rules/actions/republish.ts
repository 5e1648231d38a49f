import { checkTopicName, parseShadowTopic } from '@pifleet/protocol';
import { type CompiledTemplate, serializeOutput } from '../../core/iotsql/index.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction, RepublishTarget } from './types.js';

const AWS_NAME = 'RepublishAction';

/**
 * Where a rendered republish topic goes, or why it cannot. As in IoT Core, a reserved topic is
 * written with `$$` (`$$aws/things/pi-01/shadow/update` republishes to `$aws/things/…`), and
 * only the Device Shadow's request topics (get, update, delete of a classic or named shadow) are
 * allowed; a single leading `$`, the shadow service's own response topics, jobs, lifecycle events
 * and every other reserved topic are refused.
 */
export function resolveRepublishTopic(rendered: string): { ok: true; topic: string } | { ok: false; reason: string } {
  let topic = rendered;
  if (topic.startsWith('$$')) {
    topic = topic.slice(1);
    const shadow = parseShadowTopic(topic);
    if (shadow === undefined || shadow.response !== undefined) {
      return {
        ok: false,
        reason: `republishing to the reserved topic ${topic} is not supported (only shadow request topics)`,
      };
    }
  } else if (topic.startsWith('$')) {
    return { ok: false, reason: `topic ${topic} is reserved; write $$ to republish to a shadow topic` };
  }
  const invalid = checkTopicName(topic);
  return invalid === undefined
    ? { ok: true, topic }
    : { ok: false, reason: `topic ${JSON.stringify(topic)}: ${invalid}` };
}

/**
 * Republish action: the SELECT output, serialized, to the rendered topic on the local broker.
 *
 * The action completes once the message is handed to the broker, not when every subscriber has
 * it (as in IoT Core, delivery is not part of the action). Waiting for delivery would deadlock
 * under backpressure: the broker delivers a bounded number of messages at once, and those slots
 * can all be held by deliveries waiting for this very queue to drain. A delivery that fails later
 * goes to `onDeliveryFailure`.
 */
export function republishAction(
  topicTemplate: CompiledTemplate,
  qos: 0 | 1,
  target: RepublishTarget,
  onDeliveryFailure: (topic: string, err: unknown) => void,
): CompiledAction {
  return {
    awsName: AWS_NAME,
    async run({ message, output, ctx }) {
      const rendered = topicTemplate.render(message, ctx);
      const resolved = resolveRepublishTopic(rendered);
      if (!resolved.ok) throw new RuleActionError(AWS_NAME, rendered, `Failed to republish: ${resolved.reason}.`);
      let delivery: Promise<void>;
      try {
        delivery = target.publish(resolved.topic, serializeOutput(output), { qos });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, resolved.topic, `Failed to republish to ${resolved.topic}: ${reason}`, err);
      }
      delivery.catch((err: unknown) => onDeliveryFailure(resolved.topic, err));
    },
  };
}
