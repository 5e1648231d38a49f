import { CONSOLE_CLIENT_ID_PREFIX, consoleFeedFilters, consoleOperatorPolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { evaluatePolicies, type IotAction, iotResourceArn, type PolicyContext } from '../../src/core/policy/index.js';

/**
 * The console operator's IAM policy, evaluated by the core's policy engine (the grammar IoT Core
 * shares with IAM): it lets `pifleet console` connect as a console client and follow exactly the
 * console's live topics, and nothing a device does.
 */

const R = 'eu-west-1';
const A = '123456789012';
const policy = consoleOperatorPolicy({ region: R, accountId: A, apiId: 'abc123' });
const arn = (kind: 'client' | 'topic' | 'topicfilter', name: string) =>
  iotResourceArn({ region: R, accountId: A }, kind, name);
const ctx: PolicyContext = { region: R, accountId: A, clientId: `${CONSOLE_CLIENT_ID_PREFIX}1a2b`, thingNames: [] };
const allowed = (action: IotAction, resource: string) =>
  evaluatePolicies([{ name: 'console', document: policy }], ctx, action, resource).allowed;

describe('console operator policy', () => {
  it.each(Object.values(consoleFeedFilters))('subscribes to the console filter %s', (filter) => {
    expect(allowed('iot:Subscribe', arn('topicfilter', filter))).toBe(true);
  });

  it.each<[string, IotAction, string, boolean]>([
    ['connects as a console client', 'iot:Connect', arn('client', `${CONSOLE_CLIENT_ID_PREFIX}1a2b`), true],
    ['cannot connect as a device', 'iot:Connect', arn('client', 'pi-01'), false],
    ['receives telemetry', 'iot:Receive', arn('topic', 'pifleet/pi-01/telemetry'), true],
    ['receives alerts', 'iot:Receive', arn('topic', 'pifleet/pi-01/alerts'), true],
    ['receives shadow documents', 'iot:Receive', arn('topic', '$aws/things/pi-01/shadow/update/documents'), true],
    ['receives shadow deletions', 'iot:Receive', arn('topic', '$aws/things/pi-01/shadow/delete/accepted'), true],
    ['receives presence', 'iot:Receive', arn('topic', '$aws/events/presence/connected/pi-01'), true],
    ['does not receive commands', 'iot:Receive', arn('topic', 'pifleet/pi-01/commands'), false],
    ['does not receive shadow deltas', 'iot:Receive', arn('topic', '$aws/things/pi-01/shadow/update/delta'), false],
    ['cannot subscribe to everything', 'iot:Subscribe', arn('topicfilter', '#'), false],
    ['cannot subscribe to commands', 'iot:Subscribe', arn('topicfilter', 'pifleet/+/commands'), false],
    ['cannot publish telemetry', 'iot:Publish', arn('topic', 'pifleet/pi-01/telemetry'), false],
    ['cannot publish a shadow update', 'iot:Publish', arn('topic', '$aws/things/pi-01/shadow/update'), false],
  ])('%s', (_what, action, resource, expected) => {
    expect(allowed(action, resource)).toBe(expected);
  });

  it('grants the API calls of the console only, and no execute-api statement without an API id', () => {
    const api = policy.Statement.find((s) => s.Sid === 'CallCommandQueryApi');
    expect(api).toEqual({
      Sid: 'CallCommandQueryApi',
      Effect: 'Allow',
      Action: 'execute-api:Invoke',
      Resource: [
        `arn:aws:execute-api:${R}:${A}:abc123/*/GET/things/*`,
        `arn:aws:execute-api:${R}:${A}:abc123/*/PUT/things/*/desired`,
        `arn:aws:execute-api:${R}:${A}:abc123/*/GET/presence`,
      ],
    });
    const withoutApi = consoleOperatorPolicy({ region: R, accountId: A });
    expect(withoutApi.Statement.map((s) => s.Sid)).not.toContain('CallCommandQueryApi');
  });
});
