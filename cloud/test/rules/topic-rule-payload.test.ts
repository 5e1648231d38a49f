import { republishActionSchema, topicRulePayloadSchema, validateWith } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';

/**
 * CreateTopicRule's body as the local core parses it (protocol's TopicRulePayload schemas): the
 * first problem is the InvalidRequestException message, naming the field as the wire spells it.
 */

const firstProblem = (schema: typeof topicRulePayloadSchema | typeof republishActionSchema, body: unknown) => {
  const r = validateWith(schema, body);
  return r.ok ? undefined : r.issues[0]?.message;
};

const republish = { topic: 'a/b', roleArn: 'arn:aws:iam::123456789012:role/r' };

describe('TopicRulePayload', () => {
  it('takes a rule with defaults for what may be left out', () => {
    const r = validateWith(topicRulePayloadSchema, {
      sql: "SELECT * FROM 'a'",
      actions: [{ republish }],
      description: null,
    });
    expect(r).toEqual({
      ok: true,
      value: {
        sql: "SELECT * FROM 'a'",
        actions: [{ republish }],
        ruleDisabled: false,
        description: undefined,
        awsIotSqlVersion: undefined,
        errorAction: undefined,
      },
    });
  });

  it.each<[what: string, body: unknown, message: string]>([
    ['not an object', [], 'The topic rule payload must be an object.'],
    ['no sql', { actions: [] }, "'sql' is required."],
    ['no actions', { sql: 's' }, "'actions' is required."],
    ['actions not an array', { sql: 's', actions: {} }, "'actions' must be an array."],
    ['an action that is not an object', { sql: 's', actions: ['republish'] }, 'An action must be an object.'],
    ['ruleDisabled not a boolean', { sql: 's', actions: [], ruleDisabled: 'yes' }, "'ruleDisabled' must be a boolean."],
  ])('refuses %s', (_what, body, message) => {
    expect(firstProblem(topicRulePayloadSchema, body)).toBe(message);
  });

  it('keeps an action key named __proto__ as an own key (no prototype reached)', () => {
    const body = JSON.parse('{"sql":"s","actions":[{"__proto__":{"polluted":true}}]}');
    const r = validateWith(topicRulePayloadSchema, body);
    expect(r.ok).toBe(true);
    const action = r.ok ? (r.value.actions[0] as Record<string, unknown>) : {};
    expect(Object.keys(action)).toEqual(['__proto__']);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(action)).not.toEqual({ polluted: true });
  });
});

describe('RepublishAction', () => {
  it('defaults qos to 0 and parses headers', () => {
    const r = validateWith(republishActionSchema, {
      ...republish,
      headers: { contentType: 'text/plain', userProperties: [{ key: 'k', value: '' }] },
    });
    expect(r.ok && r.value).toEqual({
      ...republish,
      qos: 0,
      headers: {
        contentType: 'text/plain',
        userProperties: [{ key: 'k', value: '' }],
        payloadFormatIndicator: undefined,
        responseTopic: undefined,
        correlationData: undefined,
        messageExpiry: undefined,
      },
    });
  });

  it.each<[what: string, body: unknown, message: string]>([
    ['no topic', { roleArn: 'r' }, "'republish.topic' is required."],
    ['no role', { topic: 't' }, "'republish.roleArn' is required."],
    ['QoS 2', { ...republish, qos: 2 }, "'republish.qos' must be 0 or 1."],
    ['headers not an object', { ...republish, headers: 'h' }, "'headers' must be an object."],
    [
      'a header that is not a string',
      { ...republish, headers: { messageExpiry: 60 } },
      "'headers.messageExpiry' must be a string.",
    ],
    [
      'a header over 1024 characters',
      { ...republish, headers: { responseTopic: 'r'.repeat(1025) } },
      "'headers.responseTopic' must be at most 1024 characters.",
    ],
    [
      'userProperties not an array',
      { ...republish, headers: { userProperties: {} } },
      "'headers.userProperties' must be an array.",
    ],
    [
      'a user property without a value',
      { ...republish, headers: { userProperties: [{ key: 'k' }] } },
      "'headers.userProperties.value' is required.",
    ],
    [
      '101 user properties',
      { ...republish, headers: { userProperties: Array.from({ length: 101 }, () => ({ key: 'k', value: 'v' })) } },
      "'headers.userProperties' must have 1 to 100 entries.",
    ],
  ])('refuses %s', (_what, body, message) => {
    expect(firstProblem(republishActionSchema, body)).toBe(message);
  });
});
