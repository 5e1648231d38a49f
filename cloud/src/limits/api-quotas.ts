import type { QuotaSpec } from './quotas.js';

/**
 * AWS IoT Core's control-plane API rates (transactions per second, per account and Region) for
 * every operation the local core serves. Source: AWS General Reference, "AWS IoT Core endpoints
 * and quotas", table "AWS IoT Core API throttling limits"
 * (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits; the same table
 * as the AWS IoT Developer Guide's former "AWS IoT Throttling Limits" section,
 * awsdocs/aws-iot-docs doc_source/limits-iot.md). CreateKeysAndCertificate and DescribeEndpoint
 * are not in that table's archived copy; they take the 10 TPS of the other certificate reads and
 * writes (the README says so).
 *
 * The topic-rule operations (CreateTopicRule, GetTopicRule, …) and the data-plane operations are
 * not here: their rates live with the rules engine and the shadow service.
 *
 * The IoT Jobs control-plane operations (CancelJob … ListJobs) are AWS IoT Device Management's:
 * 10 TPS each, the value of the "AWS IoT Jobs" API throttling table of
 * https://docs.aws.amazon.com/general/latest/gr/iot_device_management.html as recalled; that page
 * was not in the reference set when they were added, so check it before relying on the figure.
 * DescribeJobExecution has no rate here: the jobs data plane's device operation has the same name
 * on this listener, and the rate gate keys by operation name, so a 10/s account rate would
 * throttle every device's DescribeJobExecution too.
 */
export const API_TPS = {
  AddThingToThingGroup: 60,
  AttachPolicy: 15,
  AttachThingPrincipal: 15,
  CancelJob: 10,
  CancelJobExecution: 10,
  CreateCertificateFromCsr: 15,
  CreateJob: 10,
  CreateKeysAndCertificate: 10,
  CreatePolicy: 10,
  CreateThing: 15,
  CreateThingGroup: 25,
  CreateThingType: 15,
  DeleteCertificate: 10,
  DeleteJob: 10,
  DeletePolicy: 10,
  DeleteThing: 15,
  DeleteThingGroup: 15,
  DeleteThingType: 15,
  DeprecateThingType: 15,
  DescribeCertificate: 10,
  DescribeEndpoint: 10,
  DescribeJob: 10,
  DescribeThing: 350,
  DescribeThingGroup: 100,
  DescribeThingType: 10,
  DetachPolicy: 15,
  DetachThingPrincipal: 15,
  GetJobDocument: 10,
  GetPolicy: 10,
  ListAttachedPolicies: 15,
  ListCertificates: 10,
  ListJobExecutionsForJob: 10,
  ListJobExecutionsForThing: 10,
  ListJobs: 10,
  ListPolicies: 10,
  ListTargetsForPolicy: 10,
  ListThingGroups: 10,
  ListThingGroupsForThing: 10,
  ListThingPrincipals: 10,
  ListThingTypes: 10,
  ListThings: 10,
  ListThingsInThingGroup: 25,
  RemoveThingFromThingGroup: 15,
  UpdateCertificate: 10,
  UpdateThing: 10,
  UpdateThingGroup: 15,
} as const satisfies Record<string, number>;

export type ApiOperation = keyof typeof API_TPS;

/** The quota name of an operation's rate: `apiCreateThingPerSecond`. Flat, so a limits file can set it. */
export type ApiQuotaName = `api${ApiOperation}PerSecond`;

export function apiQuotaName<O extends ApiOperation>(operation: O): `api${O}PerSecond` {
  return `api${operation}PerSecond`;
}

/** One `rate` quota per operation, spread into QUOTAS. */
export const API_RATE_QUOTAS = Object.freeze(
  Object.fromEntries(
    (Object.keys(API_TPS) as ApiOperation[]).map((op) => [
      apiQuotaName(op),
      {
        aws: API_TPS[op],
        kind: 'rate',
        unit: `${op} requests/s per account`,
        description: `${op} API requests per second (control plane)`,
      } satisfies QuotaSpec,
    ]),
  ) as Record<ApiQuotaName, QuotaSpec>,
);

/** The rate quota of a route's operation name, or undefined when the operation has no API rate here. */
export function apiQuotaOf(operation: string): ApiQuotaName | undefined {
  return Object.hasOwn(API_TPS, operation) ? apiQuotaName(operation as ApiOperation) : undefined;
}
