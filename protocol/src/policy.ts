import { appTopicResource } from './topics.js';

/** An AWS IoT policy document (the subset of IAM policy grammar IoT Core evaluates). */
export interface IotPolicyDocument {
  Version: '2012-10-17';
  Statement: IotPolicyStatement[];
}

export interface IotPolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** The name under which provisioning creates the recommended policy. */
export const RECOMMENDED_POLICY_NAME = 'pifleet-device';

/**
 * The recommended least-privilege device policy. One policy serves the whole fleet because
 * every resource is scoped by the `${iot:Connection.Thing.ThingName}` policy variable: a device
 * may connect only with its own thing name as client id, and only while its certificate is
 * attached to that thing; it may publish only its own telemetry and status topics and its own
 * shadow requests, and subscribe to and receive only its own shadow responses and commands.
 */
export function recommendedDevicePolicy(region: string, accountId: string): IotPolicyDocument {
  const arn = (kind: 'client' | 'topic' | 'topicfilter', rest: string) =>
    `arn:aws:iot:${region}:${accountId}:${kind}/${rest}`;
  const t = THING_NAME_VARIABLE;
  const shadow = `$aws/things/${t}/shadow`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ConnectAsOwnThing',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn('client', t),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Sid: 'PublishOwnTopics',
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [
          arn('topic', appTopicResource('telemetry', t)),
          arn('topic', appTopicResource('status', t)),
          arn('topic', `${shadow}/get`),
          arn('topic', `${shadow}/update`),
          arn('topic', `${shadow}/delete`),
          arn('topic', `${shadow}/name/*/get`),
          arn('topic', `${shadow}/name/*/update`),
          arn('topic', `${shadow}/name/*/delete`),
        ],
      },
      {
        // IoT Core also requires iot:RetainPublish for a retained PUBLISH (and a retained will):
        // the status topic is retained, with the offline status as the last will.
        Sid: 'RetainOwnStatus',
        Effect: 'Allow',
        Action: 'iot:RetainPublish',
        Resource: arn('topic', appTopicResource('status', t)),
      },
      {
        Sid: 'SubscribeOwnResponses',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [
          arn('topicfilter', `${shadow}/get/*`),
          arn('topicfilter', `${shadow}/update/*`),
          arn('topicfilter', `${shadow}/delete/*`),
          arn('topicfilter', `${shadow}/name/*/get/*`),
          arn('topicfilter', `${shadow}/name/*/update/*`),
          arn('topicfilter', `${shadow}/name/*/delete/*`),
          arn('topicfilter', appTopicResource('commands', t)),
        ],
      },
      {
        Sid: 'ReceiveOwnResponses',
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: [
          arn('topic', `${shadow}/get/*`),
          arn('topic', `${shadow}/update/*`),
          arn('topic', `${shadow}/delete/*`),
          arn('topic', `${shadow}/name/*/get/*`),
          arn('topic', `${shadow}/name/*/update/*`),
          arn('topic', `${shadow}/name/*/delete/*`),
          arn('topic', appTopicResource('commands', t)),
        ],
      },
    ],
  };
}
