import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import type { LambdaName } from '../../cdk/bundle.js';
import { PifleetStack } from '../../cdk/pifleet-stack.js';
import { allow, grantsOf, idsOfType, type Resources, render, sortGrants } from './template-helpers.js';

const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);
const app = new App({ analyticsReporting: false });
const stack = new PifleetStack(app, 'Test', { handlerCode: stubCode });
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Resources;

describe('the console operator policy in the stack', () => {
  const ids = idsOfType(resources, 'AWS::IAM::ManagedPolicy');
  const id = ids.find((i) => i.startsWith('ConsoleOperator')) as string;
  const props = resources[id]?.Properties as { PolicyDocument: unknown; Roles?: unknown; Users?: unknown };

  it('is one managed policy attached to nobody, its ARN an output', () => {
    expect(id).toBeDefined();
    expect(props.Roles).toBeUndefined();
    expect(props.Users).toBeUndefined();
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(render(outputs.ConsoleOperatorPolicyArn?.Value)).toBe(`\${${id}}`);
  });

  it('grants exactly what pifleet console does, statement by statement', () => {
    const iot = (rest: string) => `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:${rest}`;
    const api = `arn:\${AWS::Partition}:execute-api:\${AWS::Region}:\${AWS::AccountId}:\${ApiF70053CD}`;
    expect(grantsOf(props.PolicyDocument)).toEqual(
      sortGrants([
        ...allow(['iot:ListThings', 'iot:DescribeEndpoint'], '*'),
        ...allow(['iot:DescribeThing', 'iot:GetThingShadow'], iot('thing/*')),
        ...allow(['iot:Connect'], iot('client/pifleet-console-*')),
        ...allow(
          ['iot:Subscribe'],
          iot('topicfilter/$aws/events/presence/+/+'),
          iot('topicfilter/pifleet/+/telemetry'),
          iot('topicfilter/pifleet/+/alerts'),
          iot('topicfilter/$aws/things/+/shadow/update/documents'),
          iot('topicfilter/$aws/things/+/shadow/delete/accepted'),
        ),
        ...allow(
          ['iot:Receive'],
          iot('topic/$aws/events/presence/*/*'),
          iot('topic/pifleet/*/telemetry'),
          iot('topic/pifleet/*/alerts'),
          iot('topic/$aws/things/*/shadow/update/documents'),
          iot('topic/$aws/things/*/shadow/delete/accepted'),
        ),
        ...allow(
          ['execute-api:Invoke'],
          `${api}/*/GET/things/*`,
          `${api}/*/PUT/things/*/desired`,
          `${api}/*/GET/presence`,
        ),
      ]),
    );
  });
});
