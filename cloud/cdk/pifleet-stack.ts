import {
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
  SILENT_AFTER_MINUTES,
  silentAfterMs,
} from '@pifleet/protocol';
import { Annotations, Aws, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import type { Construct } from 'constructs';
import { TELEMETRY_TABLE_KEYS } from '../src/adapters/dynamodb-telemetry-store.js';
import { COMMAND_ROUTES } from '../src/core/command/api.js';
import { RULES, type RuleDefinition } from '../src/rules/definitions.js';
import { LAMBDA_HANDLER, LAMBDA_RUNTIME, type LambdaName } from './bundle.js';
import { ConsoleOperatorPolicy } from './console-operator.js';
import { DeploymentError } from './errors.js';
import { FleetProvisioning, type FleetProvisioningSettings } from './fleet-provisioning.js';
import { Observability } from './observability.js';
import { type ArchiveBufferingHints, TopicRules, templateStaticPrefix } from './topic-rules.js';

/**
 * The pifleet deployment in one environment-agnostic stack (no account or region baked in; no
 * context lookups, so `cdk synth` needs neither credentials nor network):
 *
 * - IoT topic rules generated from `src/rules/definitions.ts` (see `topic-rules.ts`), each with
 *   its error action, and the recommended device policy (`pifleet-device`).
 * - Lambda functions (Node.js 24, arm64) for the handlers in `src/handlers/`: ingest and presence
 *   (invoked asynchronously by rules: two retries, then an SQS on-failure destination), query
 *   and command (behind an HTTP API with IAM authorization).
 * - The telemetry table (single-table key design of `adapters/dynamodb-telemetry-store.ts`,
 *   on-demand, TTL, point-in-time recovery) and the raw archive bucket, which the archive rule
 *   fills through a Firehose delivery stream (buffered, GZIP, partitioned by thing and day).
 * - The release artifacts bucket (agent tarballs the CLI uploads; versioned) and the role IoT Jobs
 *   assumes to presign `${aws:iot:s3-presigned-url:…}` placeholders of job documents (a job's
 *   `presignedUrlConfig.roleArn`): it may read the artifacts, nothing else.
 * - With `fleetProvisioning`: pifleet's provisioning template, its pre-provisioning hook, the role
 *   IoT provisions with and the thing group of claimed devices (see `fleet-provisioning.ts`).
 * - Alarms on an SNS topic, the silent-devices check every 5 minutes and the fleet's dashboard
 *   (see `observability.ts`).
 *
 * Every function has its own role holding exactly what its handler calls; the tests in
 * `test/cdk/` pin each statement list.
 */

/** Readings TTL (days) the ingest handler writes into `expiresAt`, unless the stack is told otherwise. */
export const DEFAULT_RETENTION_DAYS = 90;

/** Archive lifecycle, in days after an object was written. */
export const DEFAULT_ARCHIVE_LIFECYCLE = {
  infrequentAccessAfterDays: 30,
  glacierAfterDays: 90,
  expireAfterDays: 365,
} as const;

/**
 * Days an overwritten or deleted release artifact is kept as a noncurrent version: long enough to
 * take back a bad upload, or to finish a rollout that still names it, without keeping every build
 * forever.
 */
export const ARTIFACT_NONCURRENT_VERSION_DAYS = 30;

/**
 * HTTP API routes, exact (anything else answers API Gateway's 404). The command routes are the
 * command API's own list; the query routes are those of `core/telemetry/query-api.ts`, with the
 * path variable named as the command routes name it (one name per path segment).
 */
export const QUERY_ROUTES = [
  { method: 'GET', path: '/things/{thingName}/telemetry' },
  { method: 'GET', path: '/things/{thingName}/latest' },
  { method: 'GET', path: '/presence' },
] as const;
export { COMMAND_ROUTES };

function httpMethod(method: string): apigwv2.HttpMethod {
  const found = Object.values(apigwv2.HttpMethod).find((m) => m === method);
  if (found === undefined)
    throw new DeploymentError('BAD_ROUTE', `unknown HTTP method ${method}`, { data: { method } });
  return found;
}

/**
 * Code of a function: a bundle directory in the app, inline stubs in tests. `undefined` for
 * `command` deploys without the command handler (its source may not exist yet): no command
 * function, routes or endpoint lookup, and a synth warning. The other three are required.
 */
export type HandlerCode = (name: LambdaName) => lambda.Code | undefined;

export interface PifleetStackProps extends StackProps {
  readonly handlerCode: HandlerCode;
  /** The rules to deploy (default: every rule of `src/rules/definitions.ts`). */
  readonly rules?: readonly RuleDefinition[];
  /** Days readings are kept before DynamoDB's TTL removes them (default {@link DEFAULT_RETENTION_DAYS}). */
  readonly retentionDays?: number;
  readonly archiveLifecycle?: Partial<typeof DEFAULT_ARCHIVE_LIFECYCLE>;
  /** Buffering of the archive's Firehose delivery stream (default 300 s / 64 MiB; see `topic-rules.ts`). */
  readonly archiveBuffering?: ArchiveBufferingHints;
  /**
   * The account's IoT data endpoint (`xxxx-ats.iot.<region>.amazonaws.com`) for the command
   * handler (`IOT_DATA_ENDPOINT=https://<it>`) and the stack outputs. When absent, a custom
   * resource looks it up at deploy time (`iot:DescribeEndpoint`).
   */
  readonly iotDataEndpoint?: string;
  /** pino level of every function (default info). */
  readonly logLevel?: string;
  /** What deleting the stack does to the table and the bucket (default RETAIN: they hold the data). */
  readonly dataRemovalPolicy?: RemovalPolicy;
  /** Fleet provisioning by claim (template, hook, role, thing group); absent: none of it is deployed. */
  readonly fleetProvisioning?: FleetProvisioningSettings;
  /** An email address subscribed to the alarm topic (absent: no subscription; add one in SNS). */
  readonly alarmEmail?: string;
  /** Minutes after which a quiet thing counts as silent (default 15; the silent-devices function's `SILENT_AFTER_MINUTES`). */
  readonly silentAfterMinutes?: number;
}

export class PifleetStack extends Stack {
  readonly table: dynamodb.Table;
  readonly archiveBucket: s3.Bucket;
  readonly artifactsBucket: s3.Bucket;
  /** The role of `presignedUrlConfig.roleArn` in jobs whose documents carry presigned artifact URLs. */
  readonly artifactsPresignRole: iam.Role;
  readonly functions: Readonly<Record<Exclude<LambdaName, 'command'>, lambda.Function>> & {
    readonly command?: lambda.Function;
  };
  /** On-failure destinations of the asynchronously invoked functions. */
  readonly failureQueues: Readonly<Record<'ingest' | 'presence', sqs.Queue>>;
  readonly topicRules: TopicRules;
  readonly devicePolicy: iot.CfnPolicy;
  readonly fleetProvisioning?: FleetProvisioning;
  readonly httpApi: apigwv2.HttpApi;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: PifleetStackProps) {
    super(scope, id, props);
    const retentionDays = props.retentionDays ?? DEFAULT_RETENTION_DAYS;
    if (!Number.isFinite(retentionDays) || retentionDays <= 0) {
      throw new DeploymentError('BAD_SETTING', 'retentionDays must be a positive number', { data: { retentionDays } });
    }
    const lifecycle = { ...DEFAULT_ARCHIVE_LIFECYCLE, ...props.archiveLifecycle };
    if (
      !(
        lifecycle.infrequentAccessAfterDays >= 30 &&
        lifecycle.glacierAfterDays >= lifecycle.infrequentAccessAfterDays + 30 &&
        lifecycle.expireAfterDays > lifecycle.glacierAfterDays
      )
    ) {
      // S3's own minimums: Standard-IA after at least 30 days, 30 more days in IA before Glacier.
      throw new DeploymentError(
        'BAD_SETTING',
        'archive lifecycle must be IA ≥ 30 days, Glacier ≥ IA + 30, expiry after Glacier',
        { data: { ...lifecycle } },
      );
    }
    const dataRemovalPolicy = props.dataRemovalPolicy ?? RemovalPolicy.RETAIN;
    const silentAfterMinutes = props.silentAfterMinutes ?? SILENT_AFTER_MINUTES.default;
    if (silentAfterMs(silentAfterMinutes) === undefined) {
      throw new DeploymentError('BAD_SETTING', `silentAfterMinutes must be 0 < minutes ≤ ${SILENT_AFTER_MINUTES.max}`, {
        data: { silentAfterMinutes },
      });
    }
    const rules = props.rules ?? RULES;

    // --- storage ---------------------------------------------------------------------------
    const { partitionKey, sortKey, ttlAttribute } = TELEMETRY_TABLE_KEYS;
    this.table = new dynamodb.Table(this, 'TelemetryTable', {
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: dataRemovalPolicy,
    });
    const connectivityIndex = TELEMETRY_TABLE_KEYS.connectivityIndex;
    this.table.addGlobalSecondaryIndex({
      indexName: connectivityIndex.indexName,
      partitionKey: { name: connectivityIndex.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: connectivityIndex.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    const archivePrefixes = [
      ...new Set(
        rules
          .flatMap((r) => [...r.actions, r.errorAction])
          .flatMap((a) =>
            a.kind === 'archive'
              ? [templateStaticPrefix(a.key)]
              : a.kind === 'firehose'
                ? [a.stream.prefix, a.stream.errorPrefix]
                : [],
          ),
      ),
    ];
    this.archiveBucket = new s3.Bucket(this, 'ArchiveBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      removalPolicy: dataRemovalPolicy,
      lifecycleRules: [
        ...archivePrefixes.map((prefix, i) => ({
          id: `archive-tiering-${i}`,
          prefix,
          transitions: [
            {
              storageClass: s3.StorageClass.INFREQUENT_ACCESS,
              transitionAfter: Duration.days(lifecycle.infrequentAccessAfterDays),
            },
            { storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(lifecycle.glacierAfterDays) },
          ],
          expiration: Duration.days(lifecycle.expireAfterDays),
        })),
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    this.artifactsBucket = new s3.Bucket(this, 'ArtifactsBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: dataRemovalPolicy,
      lifecycleRules: [
        {
          id: 'old-versions',
          noncurrentVersionExpiration: Duration.days(ARTIFACT_NONCURRENT_VERSION_DAYS),
          expiredObjectDeleteMarker: true,
        },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    // IoT signs a device's download URL with this role's session, so the URL can read exactly what
    // the role can. The trust is scoped to this account's IoT resources (IoT's confused-deputy
    // guidance: aws:SourceAccount and aws:SourceArn arn:…:iot:<region>:<account>:*).
    this.artifactsPresignRole = new iam.Role(this, 'ArtifactsPresignRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
        },
      }),
      description: 'pifleet: IoT Jobs presigns release artifact URLs (s3:GetObject on the artifacts bucket)',
    });
    this.artifactsPresignRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.artifactsBucket.arnForObjects('*')] }),
    );

    // --- functions -------------------------------------------------------------------------
    const failureQueue = (name: string) =>
      new sqs.Queue(this, `${name}Failures`, {
        retentionPeriod: Duration.days(14),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
    this.failureQueues = { ingest: failureQueue('Ingest'), presence: failureQueue('Presence') };

    const common = {
      TABLE_NAME: this.table.tableName,
      LOG_LEVEL: props.logLevel ?? 'info',
      NODE_OPTIONS: '--enable-source-maps',
    };
    const fn = (name: LambdaName, code: lambda.Code, settings: FunctionSettings) => {
      const id = capitalize(name);
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `pifleet ${name} handler`,
      });
      logGroup.grantWrite(role);
      for (const statement of settings.statements) role.addToPrincipalPolicy(statement);
      return new lambda.Function(this, `${id}Function`, {
        description: settings.description,
        runtime: LAMBDA_RUNTIME,
        architecture: lambda.Architecture.ARM_64,
        handler: LAMBDA_HANDLER,
        code,
        role,
        logGroup,
        memorySize: settings.memorySize,
        timeout: settings.timeout,
        environment: { ...common, ...settings.environment },
        ...(settings.onFailure === undefined
          ? {}
          : {
              retryAttempts: 2,
              maxEventAge: Duration.hours(6),
              onFailure: new destinations.SqsDestination(settings.onFailure),
            }),
      });
    };
    const onTable = (...actions: string[]) =>
      new iam.PolicyStatement({ actions: actions.map((a) => `dynamodb:${a}`), resources: [this.table.tableArn] });
    /** Query on the table and on the sparse connectivity index (a fleet listing in thing-name order). */
    const queryTableAndConnectivityIndex = () =>
      new iam.PolicyStatement({
        actions: ['dynamodb:Query'],
        resources: [this.table.tableArn, `${this.table.tableArn}/index/${connectivityIndex.indexName}`],
      });
    const thingArn = Stack.of(this).formatArn({ service: 'iot', resource: 'thing', resourceName: '*' });

    const required = (name: LambdaName) => {
      const code = props.handlerCode(name);
      if (code === undefined) {
        throw new DeploymentError('HANDLER_MISSING', `the ${name} handler has no code`, { data: { name } });
      }
      return code;
    };
    const commandCode = props.handlerCode('command');
    if (props.iotDataEndpoint !== undefined && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(props.iotDataEndpoint)) {
      throw new DeploymentError('BAD_SETTING', 'iotDataEndpoint must be a host name, without https:// or a path', {
        data: { iotDataEndpoint: props.iotDataEndpoint },
      });
    }
    const iotDataEndpoint = props.iotDataEndpoint ?? this.lookUpIotDataEndpoint();

    this.functions = {
      ingest: fn('ingest', required('ingest'), {
        description: 'pifleet: telemetry batches from the IoT rule into the telemetry table',
        memorySize: 512,
        timeout: Duration.seconds(30),
        environment: { RETENTION_DAYS: String(retentionDays) },
        statements: [onTable('GetItem', 'BatchWriteItem', 'UpdateItem', 'PutItem')],
        onFailure: this.failureQueues.ingest,
      }),
      presence: fn('presence', required('presence'), {
        description: 'pifleet: IoT lifecycle events into each thing’s connectivity record',
        memorySize: 256,
        timeout: Duration.seconds(10),
        statements: [onTable('PutItem')],
        onFailure: this.failureQueues.presence,
      }),
      query: fn('query', required('query'), {
        description: 'pifleet: telemetry history, latest values and fleet presence (HTTP API)',
        memorySize: 512,
        timeout: Duration.seconds(10),
        // Readings and newest values by thing; `GET /presence` also pages the connectivity index.
        statements: [queryTableAndConnectivityIndex()],
      }),
      'silent-devices': fn('silent-devices', required('silent-devices'), {
        description: 'pifleet: every 5 minutes, counts the things silent for longer than SILENT_AFTER_MINUTES',
        memorySize: 256,
        timeout: Duration.seconds(60),
        environment: { SILENT_AFTER_MINUTES: String(silentAfterMinutes) },
        // Pages the connectivity index, then the newest values of each long-connected thing.
        statements: [queryTableAndConnectivityIndex()],
      }),
      ...(commandCode === undefined
        ? {}
        : {
            command: fn('command', commandCode, {
              description: 'pifleet: desired state and shadow/connectivity reads (HTTP API)',
              memorySize: 256,
              timeout: Duration.seconds(10),
              environment: { IOT_DATA_ENDPOINT: `https://${iotDataEndpoint}` },
              statements: [
                new iam.PolicyStatement({
                  actions: ['iot:GetThingShadow', 'iot:UpdateThingShadow', 'iot:DescribeThing'],
                  resources: [thingArn],
                }),
                onTable('GetItem'),
              ],
            }),
          }),
    };
    if (commandCode === undefined) {
      Annotations.of(this).addWarningV2(
        'pifleet:no-command-handler',
        'src/handlers/command.ts has no code: deploying without the command function and its routes',
      );
    }

    // --- IoT -------------------------------------------------------------------------------
    this.topicRules = new TopicRules(this, 'Rules', {
      rules,
      functions: { ingest: this.functions.ingest, presence: this.functions.presence },
      archiveBucket: this.archiveBucket,
      ...(props.archiveBuffering === undefined ? {} : { archiveBuffering: props.archiveBuffering }),
    });

    this.devicePolicy = new iot.CfnPolicy(this, 'DevicePolicy', {
      policyName: RECOMMENDED_POLICY_NAME,
      policyDocument: recommendedDevicePolicy(Aws.REGION, Aws.ACCOUNT_ID),
    });
    // Certificates get attached to it outside CloudFormation (the provisioning CLI); deleting the
    // stack must not fail on, or cut off, a fleet that still uses it.
    this.devicePolicy.applyRemovalPolicy(RemovalPolicy.RETAIN);

    if (props.fleetProvisioning !== undefined) {
      this.fleetProvisioning = new FleetProvisioning(this, 'FleetProvisioning', {
        ...props.fleetProvisioning,
        devicePolicy: this.devicePolicy,
        logLevel: props.logLevel ?? 'info',
      });
    }

    // --- alarms, schedule, dashboard ------------------------------------------------------
    const { command, ...always } = this.functions;
    this.observability = new Observability(this, 'Observability', {
      functions: {
        ...always,
        ...(command === undefined ? {} : { command }),
        ...(this.fleetProvisioning === undefined ? {} : { 'provisioning-hook': this.fleetProvisioning.hook }),
      },
      silentDevices: this.functions['silent-devices'],
      failureQueues: this.failureQueues,
      rules,
      topicRules: this.topicRules,
      silentAfterMinutes,
      ...(props.alarmEmail === undefined ? {} : { alarmEmail: props.alarmEmail }),
    });

    // --- HTTP API --------------------------------------------------------------------------
    this.httpApi = new apigwv2.HttpApi(this, 'Api', {
      apiName: 'pifleet',
      description: 'pifleet command and query API (IAM authorization: sign requests with SigV4)',
      defaultAuthorizer: new HttpIamAuthorizer(),
    });
    const stage = this.httpApi.defaultStage?.node.defaultChild as apigwv2.CfnStage | undefined;
    stage?.addPropertyOverride('DefaultRouteSettings', { ThrottlingBurstLimit: 100, ThrottlingRateLimit: 50 });
    const queryIntegration = new HttpLambdaIntegration('QueryIntegration', this.functions.query);
    for (const route of QUERY_ROUTES) {
      this.httpApi.addRoutes({ path: route.path, methods: [httpMethod(route.method)], integration: queryIntegration });
    }
    if (this.functions.command !== undefined) {
      const commandIntegration = new HttpLambdaIntegration('CommandIntegration', this.functions.command);
      for (const route of COMMAND_ROUTES) {
        this.httpApi.addRoutes({
          path: route.path,
          methods: [httpMethod(route.method)],
          integration: commandIntegration,
        });
      }
    }

    // --- outputs ---------------------------------------------------------------------------
    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.apiEndpoint, description: 'command/query API (SigV4)' });
    new CfnOutput(this, 'IotDataEndpoint', { value: iotDataEndpoint, description: 'MQTT/HTTPS endpoint for devices' });
    new CfnOutput(this, 'TelemetryTableName', { value: this.table.tableName });
    new CfnOutput(this, 'ArchiveBucketName', { value: this.archiveBucket.bucketName });
    new CfnOutput(this, 'ArtifactsBucketName', {
      value: this.artifactsBucket.bucketName,
      description: 'release artifacts (pifleet release upload)',
    });
    new CfnOutput(this, 'ArtifactsPresignRoleArn', {
      value: this.artifactsPresignRole.roleArn,
      description: 'presignedUrlConfig.roleArn of jobs with presigned artifact URLs',
    });
    new CfnOutput(this, 'IngestFailureQueueUrl', { value: this.failureQueues.ingest.queueUrl });
    new CfnOutput(this, 'PresenceFailureQueueUrl', { value: this.failureQueues.presence.queueUrl });
    new CfnOutput(this, 'DevicePolicyName', { value: RECOMMENDED_POLICY_NAME });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.observability.alarmTopic.topicArn,
      description: 'alarms and their recoveries (subscribe here)',
    });
    new CfnOutput(this, 'DashboardName', { value: this.observability.dashboard.dashboardName });
    new ConsoleOperatorPolicy(this, 'ConsoleOperator', { api: this.httpApi });
  }

  /**
   * The account's ATS data endpoint, read at deploy time. `iot:DescribeEndpoint` has no resource
   * type, so IAM requires `Resource: "*"` for it (the one wildcard resource in this stack's own
   * policies; the custom resource's provider function also carries AWS's managed basic
   * execution role). That provider function is CDK's: it runs CDK's latest Node runtime for the
   * region (`nodejs24.x` everywhere in aws-cdk-lib 2.276) on x86_64, CDK's default — it runs once
   * per deployment, so its architecture costs nothing worth an override of CDK's internals
   * (`test/cdk/stack.test.ts` pins both, so a CDK upgrade that changes them is noticed).
   */
  private lookUpIotDataEndpoint(): string {
    const call: cr.AwsSdkCall = {
      service: 'IoT',
      action: 'DescribeEndpoint',
      parameters: { endpointType: 'iot:Data-ATS' },
      physicalResourceId: cr.PhysicalResourceId.of('iot-data-ats-endpoint'),
    };
    const lookup = new cr.AwsCustomResource(this, 'IotDataEndpointLookup', {
      onCreate: call,
      onUpdate: call,
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['iot:DescribeEndpoint'], resources: ['*'] }),
      ]),
    });
    return lookup.getResponseField('endpointAddress');
  }
}

interface FunctionSettings {
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment?: Record<string, string>;
  readonly statements: readonly iam.PolicyStatement[];
  readonly onFailure?: sqs.IQueue;
}

/** `silent-devices` → `SilentDevices`: construct ids (and so logical ids) in the stack's style. */
function capitalize(s: string): string {
  return s
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
