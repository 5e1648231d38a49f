import { consoleOperatorPolicy } from '@pifleet/protocol';
import { Aws, CfnOutput } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * The managed policy an operator's IAM user or role needs to run `pifleet console` against this
 * stack: the protocol's {@link consoleOperatorPolicy} scoped to this account, region and command/query
 * API. The stack attaches it to nobody (who operates the fleet is the account's decision); its ARN
 * is an output.
 */
export class ConsoleOperatorPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: { readonly api: Pick<apigwv2.IHttpApi, 'apiId'> }) {
    super(scope, id);
    const document = consoleOperatorPolicy({
      region: Aws.REGION,
      accountId: Aws.ACCOUNT_ID,
      partition: Aws.PARTITION,
      apiId: props.api.apiId,
    });
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: 'pifleet console: read things and shadows, follow the live topics over WebSocket, call the API',
      document: iam.PolicyDocument.fromJson(document),
    });
    new CfnOutput(scope, 'ConsoleOperatorPolicyArn', {
      value: this.policy.managedPolicyArn,
      description: 'attach to the IAM users or roles that run pifleet console',
    });
  }
}
