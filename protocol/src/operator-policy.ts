import type { IotPolicyDocument } from './policy.js';
import { consoleFeedFilters } from './topics.js';

/**
 * The least-privilege IAM policy of an operator running `pifleet console` against a deployed
 * stack: read the registry and the shadows, connect over MQTT over WebSocket as a console client,
 * follow exactly the console's live topics, and call the command/query API. The CDK app attaches
 * nothing: it creates this document as a managed policy for operators' users or roles; the README
 * prints it; the local IoT Core applies its IoT statements to its own SigV4 WebSocket clients.
 */

/** Client ids a console may connect with (`pifleet console` adds a random suffix). */
export const CONSOLE_CLIENT_ID_PREFIX = 'pifleet-console-';

export interface ConsoleOperatorPolicyScope {
  readonly region: string;
  readonly accountId: string;
  /** Default `aws`. */
  readonly partition?: string;
  /** The command/query API's id (API Gateway); without it, no `execute-api` statement. */
  readonly apiId?: string;
}

/** A topic filter as an `iot:Receive` resource: MQTT's `+` becomes IAM's `*` (one or more levels). */
function receiveResource(filter: string): string {
  return filter.replaceAll('+', '*');
}

export function consoleOperatorPolicy(scope: ConsoleOperatorPolicyScope): IotPolicyDocument {
  const partition = scope.partition ?? 'aws';
  const iot = (rest: string) => `arn:${partition}:iot:${scope.region}:${scope.accountId}:${rest}`;
  const filters = Object.values(consoleFeedFilters);
  const doc: IotPolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      {
        // Neither action takes a resource ARN: IAM requires "*" for them.
        Sid: 'ListThingsAndEndpoint',
        Effect: 'Allow',
        Action: ['iot:ListThings', 'iot:DescribeEndpoint'],
        Resource: '*',
      },
      {
        Sid: 'ReadThingsAndShadows',
        Effect: 'Allow',
        Action: ['iot:DescribeThing', 'iot:GetThingShadow'],
        Resource: iot('thing/*'),
      },
      {
        Sid: 'ConnectAsConsole',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: iot(`client/${CONSOLE_CLIENT_ID_PREFIX}*`),
      },
      {
        Sid: 'FollowFleetTopics',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: filters.map((f) => iot(`topicfilter/${f}`)),
      },
      {
        Sid: 'ReceiveFleetTopics',
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: filters.map((f) => iot(`topic/${receiveResource(f)}`)),
      },
    ],
  };
  if (scope.apiId !== undefined) {
    const api = `arn:${partition}:execute-api:${scope.region}:${scope.accountId}:${scope.apiId}`;
    doc.Statement.push({
      Sid: 'CallCommandQueryApi',
      Effect: 'Allow',
      Action: 'execute-api:Invoke',
      Resource: [`${api}/*/GET/things/*`, `${api}/*/PUT/things/*/desired`, `${api}/*/GET/presence`],
    });
  }
  return doc;
}
