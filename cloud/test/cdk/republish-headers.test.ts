import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import type { LambdaName } from '../../cdk/bundle.js';
import { PifleetStack } from '../../cdk/pifleet-stack.js';
import type { RuleDefinition } from '../../src/rules/definitions.js';
import { type Resources, render } from './template-helpers.js';

/** A republish action's MQTT 5 headers reach CloudFormation's AWS::IoT::TopicRule as written. */

const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);

const withHeaders: RuleDefinition = {
  name: 'custom_republish_headers',
  description: 'republish with MQTT 5 headers, literal and templates',
  sql: "SELECT * FROM 'pifleet/+/status'",
  sqlVersion: '2016-03-23',
  actions: [
    {
      kind: 'republish',
      topic: 'fleet/${topic(2)}/status',
      qos: 1,
      headers: {
        payloadFormatIndicator: 'UTF8_DATA',
        contentType: "${get_mqtt_property('content_type')}",
        correlationData: "${get_mqtt_property('correlation_data')}",
        messageExpiry: '60',
        userProperties: [{ key: 'site', value: "${get(get_user_properties('site'), 0)}" }],
      },
    },
  ],
  errorAction: { kind: 'log', logGroup: '/pifleet/iot-rule-errors' },
};

describe('republish headers in the CDK app', () => {
  it('become the Republish action’s Headers; a republish without headers has none', () => {
    const app = new App({ analyticsReporting: false });
    const stack = new PifleetStack(app, 'Headers', {
      handlerCode: stubCode,
      rules: [
        withHeaders,
        { ...withHeaders, name: 'custom_plain', actions: [{ kind: 'republish', topic: 'x', qos: 0 }] },
      ],
    });
    const resources = Template.fromStack(stack).toJSON().Resources as Resources;
    const republishOf = (name: string) => {
      const rule = Object.values(resources).find((r) => r.Properties?.RuleName === name);
      const payload = render(rule?.Properties?.TopicRulePayload) as {
        Actions: { Republish: Record<string, unknown> }[];
      };
      return payload.Actions[0]?.Republish;
    };
    expect(republishOf('custom_republish_headers')?.Headers).toEqual({
      PayloadFormatIndicator: 'UTF8_DATA',
      ContentType: "${get_mqtt_property('content_type')}",
      CorrelationData: "${get_mqtt_property('correlation_data')}",
      MessageExpiry: '60',
      UserProperties: [{ Key: 'site', Value: "${get(get_user_properties('site'), 0)}" }],
    });
    expect(republishOf('custom_plain')).not.toHaveProperty('Headers');
  });
});
