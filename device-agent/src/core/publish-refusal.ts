import { MQTT5_REASON, mqtt5ReasonName } from '@pifleet/protocol';

/**
 * What a telemetry publish the broker refused (MQTT 5 PUBACK reason code ≥ 0x80) means for the
 * batches in the outbox, by reason code. AWS IoT Core answers a QoS 1 PUBLISH with PUBACK 0x87 when
 * the policy denies iot:Publish on the topic and 0x90 when the topic name is not one it accepts
 * ("MQTT reason codes", AWS IoT Developer Guide); both leave the connection open on MQTT 5.
 *
 * - `topic`: every batch on this topic gets the same answer until someone changes the policy or
 *   the configuration. Resending at the normal retry delay would hammer the broker for nothing, and
 *   dropping the batches would lose readings over a fixable mistake: the agent keeps them all, says
 *   what to fix (log and shadow), and probes with the oldest batch at a slow, fixed interval, so a
 *   fixed policy resumes delivery without a restart.
 * - `batch`: this batch can never be accepted as it is (its size, its payload), but the ones behind
 *   it can: it is held back for the slow interval, the others go, nothing is deleted.
 * - `throttled`: IoT Core's per-connection publish quotas (0x97 QUOTA_EXCEEDED, 0x96
 *   MESSAGE_RATE_TOO_HIGH: more than 100 publishes or 512 KiB a second on one connection, "AWS IoT
 *   Core endpoints and quotas"). It passes by itself once the agent sends slower: the batch stays in
 *   the outbox, the publisher backs off (growing delay with jitter) and tries again, and counts it.
 * - anything else (implementation-specific, unspecified): a passing condition, retried at the
 *   normal delay like a failed publish.
 */
export type RefusalScope = 'topic' | 'batch' | 'throttled' | 'transient';

export interface PublishRefusal {
  readonly scope: RefusalScope;
  readonly reasonCode: number;
  /** The code's name, e.g. `NOT_AUTHORIZED`. */
  readonly reason: string;
  /** One sentence: what to fix (for `topic` and `batch`). */
  readonly fix: string;
}

/** What the agent reports in the shadow (`reported.telemetry`) while the broker refuses its telemetry topic. */
export interface TelemetryBlocked {
  /** The reason code's name (`NOT_AUTHORIZED`, `TOPIC_NAME_INVALID`). */
  readonly blocked: string;
  readonly reasonCode: number;
  readonly topic: string;
  /** Since when (ms since the epoch, the agent's clock): the first refusal. */
  readonly since: number;
  readonly fix: string;
}

/** The refusal an error carries (a `TransportError` `PUBLISH_REFUSED` with a numeric `reasonCode`), if any. */
export function publishRefusalOf(err: unknown, topic: string): PublishRefusal | undefined {
  const e = err as { code?: unknown; data?: { reasonCode?: unknown } } | undefined;
  if (e?.code !== 'PUBLISH_REFUSED' || typeof e.data?.reasonCode !== 'number') return undefined;
  return classifyRefusal(e.data.reasonCode, topic);
}

export function classifyRefusal(reasonCode: number, topic: string): PublishRefusal {
  const reason = mqtt5ReasonName(reasonCode);
  switch (reasonCode) {
    case MQTT5_REASON.NOT_AUTHORIZED:
      return {
        scope: 'topic',
        reasonCode,
        reason,
        fix: `the policy attached to this device's certificate must allow iot:Publish on the telemetry topic ${topic} (resource arn:aws:iot:<region>:<account>:topic/${topic}); batches are kept and sent once it does`,
      };
    case MQTT5_REASON.TOPIC_NAME_INVALID:
      return {
        scope: 'topic',
        reasonCode,
        reason,
        fix: `the broker does not accept the telemetry topic name ${topic} (it is built from thingName: check thingName against AWS IoT's topic rules); batches are kept`,
      };
    case MQTT5_REASON.PACKET_TOO_LARGE:
    case MQTT5_REASON.PAYLOAD_FORMAT_INVALID:
      return {
        scope: 'batch',
        reasonCode,
        reason,
        fix: 'the broker does not accept this batch as it is (lower batch.maxBytes if it is too large); it stays in the outbox and the batches behind it are sent',
      };
    case MQTT5_REASON.QUOTA_EXCEEDED:
    case MQTT5_REASON.MESSAGE_RATE_TOO_HIGH:
      return {
        scope: 'throttled',
        reasonCode,
        reason,
        fix: 'the broker throttles this connection (IoT Core allows 100 publishes and 512 KiB per second per connection); the batch is kept and sent again after a backoff',
      };
    default:
      return { scope: 'transient', reasonCode, reason, fix: 'retried at the normal delay' };
  }
}
