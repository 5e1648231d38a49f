import {
  DEFAULT_CLAIM_TEMPLATE_NAME,
  DEFAULT_CLAIMED_THING_GROUP,
  DEFAULT_CLAIMED_THING_PREFIX,
  pifleetClaimTemplateBody,
  RECOMMENDED_POLICY_NAME,
} from '@pifleet/protocol';
import { Aws, CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  ALLOWED_SERIALS_ENV,
  PROVISIONING_HOOK_FUNCTION_NAME,
  SERIAL_NUMBER_PATTERN,
} from '../src/handlers/provisioning-hook.js';
import { DEFAULT_HOOK_PAYLOAD_VERSION, PROVISIONING_TEMPLATE_LIMITS } from '../src/provisioning/templates.js';
import { LAMBDA_HANDLER, LAMBDA_RUNTIME } from './bundle.js';
import { DeploymentError } from './errors.js';

/**
 * Fleet provisioning by claim in AWS: pifleet's provisioning template (the body of
 * `pifleetClaimTemplate()` in @pifleet/protocol, the one `pifleet claims create` makes on the local
 * core, so a Pi gets the same thing either way), enabled, with pifleet's pre-provisioning hook; the
 * role IoT assumes to carry the template out; and the thing group the template files devices in.
 * `pifleet claims create --template <name>` then finds all three and adds only the claim policy and
 * a claim certificate.
 *
 * The provisioning role holds an inline policy naming what this template does, not AWS's managed
 * `AWSIoTThingsRegistration` (which allows some thirty IoT actions on every resource, policy
 * creation and billing groups included): create, describe and update things named `pi-*`, put
 * them in this one thing group, attach certificates to them, describe and activate certificates,
 * and attach the one existing `pifleet-device` policy (read with `iot:GetPolicy`) to them. The
 * action list is the managed policy's, cut to what a template of a thing, an existing
 * certificate and an existing policy can need; the resources are scoped by the types the Service
 * Authorization Reference gives each action. That scoping is checked here against the
 * reference, not against a live account: the README's AWS walk-through provisions one device and
 * reads the hook's log before the image is flashed in bulk. Should AWS refuse a call the list
 * lacks (CloudTrail names it), `provisioningRolePolicy: 'managed'` (`-c
 * pifleet:provisioningRolePolicy=managed`) attaches the managed policy instead, and the gap is
 * worth an issue.
 *
 * Who may use the role and the function (confused deputy): only `iot.amazonaws.com`, only for
 * this account (`aws:SourceAccount`) and this account's IoT resources in this region
 * (`aws:SourceArn` like `arn:…:iot:<region>:<account>:*`, the form IoT's confused-deputy page gives
 * when the source resource is not one known ARN; the presign role of the stack is scoped alike).
 */

/** The Lambda's timeout: IoT waits 5 seconds for a hook's answer, so a longer run is wasted. */
export const PROVISIONING_HOOK_TIMEOUT = Duration.seconds(5);

/** Lambda's limit on a function's environment: keys and values together, bytes (here ASCII: characters). */
export const LAMBDA_ENVIRONMENT_LIMIT = 4096;

/**
 * IoT actions the provisioning role may take, by resource. Exported so the tests pin the same
 * list the stack grants and a reviewer reads one table.
 */
export const PROVISIONING_ROLE_ACTIONS = {
  things: [
    'iot:CreateThing',
    'iot:DescribeThing',
    'iot:UpdateThing',
    'iot:AttachThingPrincipal',
    'iot:ListThingPrincipals',
    'iot:ListThingGroupsForThing',
  ],
  /** Needs both the thing and the group (both are required resources of AddThingToThingGroup). */
  groupMembership: ['iot:AddThingToThingGroup'],
  group: ['iot:DescribeThingGroup'],
  certificates: [
    'iot:DescribeCertificate',
    'iot:UpdateCertificate',
    'iot:AttachPolicy',
    'iot:ListAttachedPolicies',
    'iot:ListPrincipalThings',
  ],
  policy: ['iot:GetPolicy'],
} as const;

export interface FleetProvisioningSettings {
  /** The bundled hook (`src/handlers/provisioning-hook.ts`). */
  readonly hookCode: lambda.Code;
  /** Default {@link DEFAULT_CLAIM_TEMPLATE_NAME} (`pifleet-claim`). */
  readonly templateName?: string;
  /** Default {@link DEFAULT_CLAIMED_THING_GROUP} (`pifleet-claimed`). */
  readonly thingGroupName?: string;
  /** When given, the hook admits only these serials (any case). Absent: every well-formed serial. */
  readonly allowedSerials?: readonly string[];
  /**
   * `scoped` (default): the inline grants of {@link PROVISIONING_ROLE_ACTIONS}. `managed`: AWS's
   * `AWSIoTThingsRegistration` instead, the fallback should AWS need a call the scoped list lacks.
   */
  readonly provisioningRolePolicy?: ProvisioningRolePolicy;
}

export const PROVISIONING_ROLE_POLICIES = ['scoped', 'managed'] as const;
export type ProvisioningRolePolicy = (typeof PROVISIONING_ROLE_POLICIES)[number];

/** The managed policy of the `managed` fallback (IoT's documented policy for provisioning roles). */
export const THINGS_REGISTRATION_MANAGED_POLICY = 'service-role/AWSIoTThingsRegistration';

export interface FleetProvisioningProps extends FleetProvisioningSettings {
  /** The device policy the template attaches: created by the stack, so the template waits for it. */
  readonly devicePolicy: iot.CfnPolicy;
  readonly logLevel: string;
}

export class FleetProvisioning extends Construct {
  readonly templateName: string;
  readonly thingGroupName: string;
  readonly template: iot.CfnProvisioningTemplate;
  readonly provisioningRole: iam.Role;
  readonly hook: lambda.Function;
  readonly thingGroup: iot.CfnThingGroup;

  constructor(scope: Construct, id: string, props: FleetProvisioningProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.templateName = props.templateName ?? DEFAULT_CLAIM_TEMPLATE_NAME;
    this.thingGroupName = props.thingGroupName ?? DEFAULT_CLAIMED_THING_GROUP;
    if (!PROVISIONING_TEMPLATE_LIMITS.templateName.test(this.templateName)) {
      throw new DeploymentError(
        'BAD_SETTING',
        'the provisioning template name must be 1-36 characters of 0-9 A-Z a-z _ -',
        {
          data: { templateName: this.templateName },
        },
      );
    }
    let templateBody: string;
    try {
      templateBody = pifleetClaimTemplateBody({ thingGroup: this.thingGroupName, policyName: RECOMMENDED_POLICY_NAME });
    } catch (err) {
      throw new DeploymentError('BAD_SETTING', (err as Error).message, {
        cause: err,
        data: { thingGroupName: this.thingGroupName },
      });
    }
    const environment = hookEnvironment(props);

    // --- the hook --------------------------------------------------------------------------
    const logGroup = new logs.LogGroup(this, 'HookLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const hookRole = new iam.Role(this, 'HookRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'pifleet provisioning-hook handler',
    });
    logGroup.grantWrite(hookRole);
    this.hook = new lambda.Function(this, 'Hook', {
      // A fixed name: the local core recognises it in a hook's targetArn, and an operator's own
      // template (`pifleet claims create --hook-arn`) can name it without reading stack outputs.
      functionName: PROVISIONING_HOOK_FUNCTION_NAME,
      description: 'pifleet: pre-provisioning hook (admits well-formed, allowed serials; fleet provisioning by claim)',
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      handler: LAMBDA_HANDLER,
      code: props.hookCode,
      role: hookRole,
      logGroup,
      memorySize: 256,
      timeout: PROVISIONING_HOOK_TIMEOUT,
      environment,
    });
    const iotSource = {
      account: Aws.ACCOUNT_ID,
      arnLike: `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:*`,
    };
    this.hook.addPermission('IotInvoke', {
      principal: new iam.ServicePrincipal('iot.amazonaws.com'),
      action: 'lambda:InvokeFunction',
      sourceAccount: iotSource.account,
      sourceArn: iotSource.arnLike,
    });

    // --- the thing group and the provisioning role ----------------------------------------
    this.thingGroup = new iot.CfnThingGroup(this, 'ClaimedThingGroup', {
      thingGroupName: this.thingGroupName,
      thingGroupProperties: { thingGroupDescription: 'pifleet: devices provisioned by claim' },
    });
    // Provisioned things are in it: deleting the stack must not take a fleet's grouping with it.
    this.thingGroup.applyRemovalPolicy(RemovalPolicy.RETAIN);

    this.provisioningRole = new iam.Role(this, 'ProvisioningRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': iotSource.account },
          ArnLike: { 'aws:SourceArn': iotSource.arnLike },
        },
      }),
      description: `pifleet: IoT provisions devices through the ${this.templateName} template`,
    });
    if (props.provisioningRolePolicy === 'managed') {
      this.provisioningRole.addManagedPolicy(
        iam.ManagedPolicy.fromAwsManagedPolicyName(THINGS_REGISTRATION_MANAGED_POLICY),
      );
    } else {
      const arn = (resource: string, resourceName: string) =>
        stack.formatArn({ service: 'iot', resource, resourceName });
      const things = arn('thing', `${DEFAULT_CLAIMED_THING_PREFIX}*`);
      const group = arn('thinggroup', this.thingGroupName);
      const grant = (actions: readonly string[], ...resources: string[]) =>
        this.provisioningRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [...actions], resources }));
      grant(PROVISIONING_ROLE_ACTIONS.things, things);
      grant(PROVISIONING_ROLE_ACTIONS.groupMembership, things, group);
      grant(PROVISIONING_ROLE_ACTIONS.group, group);
      grant(PROVISIONING_ROLE_ACTIONS.certificates, arn('cert', '*'));
      grant(PROVISIONING_ROLE_ACTIONS.policy, arn('policy', RECOMMENDED_POLICY_NAME));
    }

    // --- the template ----------------------------------------------------------------------
    this.template = new iot.CfnProvisioningTemplate(this, 'Template', {
      templateName: this.templateName,
      description: 'pifleet fleet provisioning by claim (CDK stack)',
      templateType: 'FLEET_PROVISIONING',
      enabled: true,
      provisioningRoleArn: this.provisioningRole.roleArn,
      templateBody,
      preProvisioningHook: { targetArn: this.hook.functionArn, payloadVersion: DEFAULT_HOOK_PAYLOAD_VERSION },
    });
    // A device may register the moment the template exists: by then the role must hold its
    // policy, IoT must be allowed to invoke the hook, and the group and device policy must exist.
    this.template.node.addDependency(this.provisioningRole, this.hook, this.thingGroup, props.devicePolicy);

    new CfnOutput(stack, 'ProvisioningTemplateName', {
      value: this.templateName,
      description: 'pifleet claims create --template <this>',
    });
    new CfnOutput(stack, 'ProvisioningRoleArn', {
      value: this.provisioningRole.roleArn,
      description: 'the role IoT assumes to provision (pifleet claims create --role-arn, for another template)',
    });
    new CfnOutput(stack, 'ProvisioningHookArn', {
      value: this.hook.functionArn,
      description: 'the pre-provisioning hook (pifleet claims create --hook-arn, for another template)',
    });
    new CfnOutput(stack, 'ClaimedThingGroupName', { value: this.thingGroupName });
  }
}

/** The hook's environment, refused at synth when the allow-list is malformed or Lambda would refuse its size. */
function hookEnvironment(props: FleetProvisioningProps): Record<string, string> {
  const environment: Record<string, string> = { LOG_LEVEL: props.logLevel, NODE_OPTIONS: '--enable-source-maps' };
  if (props.allowedSerials === undefined) return environment;
  const bad = props.allowedSerials.filter((s) => !SERIAL_NUMBER_PATTERN.test(s));
  if (bad.length > 0 || props.allowedSerials.length === 0) {
    throw new DeploymentError(
      'BAD_SETTING',
      props.allowedSerials.length === 0
        ? 'allowedSerials is empty: it would admit no device (leave it out to admit every well-formed serial)'
        : `allowedSerials holds ${bad.length} entries that are not serials (1-64 characters of 0-9 A-Z a-z _ -)`,
      { data: { bad: bad.slice(0, 5) } },
    );
  }
  environment[ALLOWED_SERIALS_ENV] = [...new Set(props.allowedSerials.map((s) => s.toLowerCase()))].join(',');
  const size = Object.entries(environment).reduce((n, [k, v]) => n + k.length + v.length, 0);
  if (size > LAMBDA_ENVIRONMENT_LIMIT) {
    throw new DeploymentError(
      'BAD_SETTING',
      `allowedSerials makes the hook's environment ${size} bytes, over Lambda's ${LAMBDA_ENVIRONMENT_LIMIT}: list fewer serials, or leave the list out and revoke unwanted claims`,
      { data: { size, serials: props.allowedSerials.length } },
    );
  }
  return environment;
}
