import {
  createCertificateFromCsrBodySchema,
  createPolicyBodySchema,
  createThingBodySchema,
  optionalIntegerField,
  policyTargetBodySchema,
  thingTypeFields,
  updateThingBodySchema,
  type Validation,
  validateWith,
} from '@pifleet/protocol';
import type { LocalCa } from '../ca/local-ca.js';
import { CsrError } from '../ca/local-ca.js';
import type { CertificateRecord, PolicyRecord, Registry, ThingRecord } from '../registry/sqlite-registry.js';
import { ApiError, invalidRequest } from './errors.js';
import type { ApiRequest, ApiResponse, Route, RouteGroup } from './server.js';

/**
 * The IoT control-plane API subset the provisioning CLI uses, wire-compatible with
 * `@aws-sdk/client-iot` (REST-JSON: paths, query and header bindings, field names and error
 * names as in the IoT service model). Semantics come from the registry.
 */

export interface IotControlPlaneDeps {
  readonly registry: Registry;
  readonly ca: LocalCa;
  /** What DescribeEndpoint returns: the host devices connect to (the broker's). */
  readonly endpointAddress: () => string;
}

const ENDPOINT_TYPES = new Set(['iot:Data', 'iot:Data-ATS', 'iot:CredentialProvider', 'iot:Jobs']);

/** Epoch seconds, REST-JSON's default timestamp format. */
export const epoch = (date: Date) => date.getTime() / 1000;
export const ok = (json: unknown = {}): ApiResponse => ({ json });

/** The value a schema accepted, or 400 InvalidRequestException with its first problem (fields in wire order). */
export function valid<T>(result: Validation<T>): T {
  if (result.ok) return result.value;
  throw invalidRequest(result.issues[0]?.message ?? 'The request is not valid.');
}

/** Integer query parameters, checked as the body's integers are. */
const integerQuery = {
  maxResults: optionalIntegerField('maxResults'),
  pageSize: optionalIntegerField('pageSize'),
  expectedVersion: optionalIntegerField('expectedVersion'),
} as const;

export const queryInteger = (request: ApiRequest, name: keyof typeof integerQuery): number | undefined =>
  valid(validateWith(integerQuery[name], request.query.get(name)));

export function queryBoolean(request: ApiRequest, name: string): boolean | undefined {
  const value = request.query.get(name);
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalidRequest(`Query parameter '${name}' must be true or false.`);
}

/**
 * The thing type a CreateThing or UpdateThing names must exist, and the local core has no billing
 * groups, so one named cannot be found. Checked field by field before the rest of the body, as AWS
 * answers for the first of them: an unknown thing type is a 404 even when a later field is malformed.
 */
function knownThingType(registry: Registry, body: Record<string, unknown>): void {
  const { thingTypeName } = valid(validateWith(thingTypeFields.thingTypeName, body));
  if (thingTypeName !== undefined) registry.describeThingType(thingTypeName);
  const { billingGroupName } = valid(validateWith(thingTypeFields.billingGroupName, body));
  if (billingGroupName !== undefined) {
    throw new ApiError('ResourceNotFoundException', 404, `Billing group ${billingGroupName} cannot be found.`);
  }
}

const principalHeader = (request: ApiRequest): string => {
  const value = request.headers['x-amzn-principal'];
  if (typeof value !== 'string' || value === '') throw invalidRequest("The 'x-amzn-principal' header is required.");
  return value;
};

const thingJson = (t: ThingRecord) => ({
  thingName: t.thingName,
  ...(t.thingTypeName === undefined ? {} : { thingTypeName: t.thingTypeName }),
  thingArn: t.thingArn,
  attributes: t.attributes,
  version: t.version,
});

const certificateSummary = (c: CertificateRecord) => ({
  certificateArn: c.certificateArn,
  certificateId: c.certificateId,
  status: c.status,
  certificateMode: 'DEFAULT',
  creationDate: epoch(c.creationDate),
});

const policySummary = (p: PolicyRecord) => ({ policyName: p.policyName, policyArn: p.policyArn });

function csrFailure(err: unknown): never {
  if (err instanceof CsrError) throw new ApiError('InvalidRequestException', 400, err.message, { cause: err });
  throw err;
}

export function iotControlPlaneRoutes(deps: IotControlPlaneDeps): RouteGroup {
  const { registry, ca } = deps;
  const param = (request: ApiRequest, name: string) => request.params[name] as string;

  const routes: Route[] = [
    {
      method: 'POST',
      path: '/things/{thingName}',
      operation: 'CreateThing',
      handle(request) {
        const raw = request.json();
        knownThingType(registry, raw);
        const { attributePayload, thingTypeName } = valid(validateWith(createThingBodySchema, raw));
        const thing = registry.createThing({
          thingName: param(request, 'thingName'),
          thingTypeName,
          attributes: attributePayload?.attributes,
        });
        return ok({ thingName: thing.thingName, thingArn: thing.thingArn, thingId: thing.thingId });
      },
    },
    {
      method: 'GET',
      path: '/things/{thingName}',
      operation: 'DescribeThing',
      handle(request) {
        const thing = registry.describeThing(param(request, 'thingName'));
        return ok({
          defaultClientId: thing.thingName,
          thingName: thing.thingName,
          thingId: thing.thingId,
          thingArn: thing.thingArn,
          ...(thing.thingTypeName === undefined ? {} : { thingTypeName: thing.thingTypeName }),
          attributes: thing.attributes,
          version: thing.version,
        });
      },
    },
    {
      method: 'GET',
      path: '/things',
      operation: 'ListThings',
      handle(request) {
        const q = request.query;
        const page = registry.listThings({
          thingTypeName: q.get('thingTypeName'),
          pageSize: queryInteger(request, 'maxResults'),
          token: q.get('nextToken'),
          attributeName: q.get('attributeName'),
          attributeValue: q.get('attributeValue'),
          usePrefixAttributeValue: queryBoolean(request, 'usePrefixAttributeValue'),
        });
        return ok({ things: page.items.map(thingJson), ...(page.next ? { nextToken: page.next } : {}) });
      },
    },
    {
      method: 'PATCH',
      path: '/things/{thingName}',
      operation: 'UpdateThing',
      handle(request) {
        const raw = request.json();
        knownThingType(registry, raw);
        const { attributePayload, expectedVersion, thingTypeName, removeThingType } = valid(
          validateWith(updateThingBodySchema, raw),
        );
        registry.updateThing({
          thingName: param(request, 'thingName'),
          thingTypeName,
          removeThingType,
          attributes: attributePayload?.attributes,
          merge: attributePayload?.merge ?? false,
          expectedVersion,
        });
        return ok();
      },
    },
    {
      method: 'DELETE',
      path: '/things/{thingName}',
      operation: 'DeleteThing',
      handle(request) {
        registry.deleteThing({
          thingName: param(request, 'thingName'),
          expectedVersion: queryInteger(request, 'expectedVersion'),
        });
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/keys-and-certificate',
      operation: 'CreateKeysAndCertificate',
      async handle(request) {
        const active = queryBoolean(request, 'setAsActive') ?? false;
        const issued = await ca.createKeysAndCertificate();
        const cert = registry.registerCertificate({
          certificatePem: issued.certificatePem,
          status: active ? 'ACTIVE' : 'INACTIVE',
        });
        return ok({
          certificateArn: cert.certificateArn,
          certificateId: cert.certificateId,
          certificatePem: cert.certificatePem,
          keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
        });
      },
    },
    {
      method: 'POST',
      path: '/certificates',
      operation: 'CreateCertificateFromCsr',
      async handle(request) {
        const active = queryBoolean(request, 'setAsActive') ?? false;
        const { certificateSigningRequest: csr } = valid(
          validateWith(createCertificateFromCsrBodySchema, request.json()),
        );
        const pem = await ca.certificateFromCsr(csr).catch(csrFailure);
        const cert = registry.registerCertificate({ certificatePem: pem, status: active ? 'ACTIVE' : 'INACTIVE' });
        return ok({
          certificateArn: cert.certificateArn,
          certificateId: cert.certificateId,
          certificatePem: cert.certificatePem,
        });
      },
    },
    {
      method: 'GET',
      path: '/certificates/{certificateId}',
      operation: 'DescribeCertificate',
      handle(request) {
        const c = registry.describeCertificate(param(request, 'certificateId'));
        return ok({
          certificateDescription: {
            certificateArn: c.certificateArn,
            certificateId: c.certificateId,
            status: c.status,
            certificatePem: c.certificatePem,
            ownedBy: registry.account.accountId,
            creationDate: epoch(c.creationDate),
            lastModifiedDate: epoch(c.lastModifiedDate),
            customerVersion: 1,
            generationId: c.generationId,
            validity: { notBefore: epoch(c.notBefore), notAfter: epoch(c.notAfter) },
            certificateMode: 'DEFAULT',
          },
        });
      },
    },
    {
      method: 'GET',
      path: '/certificates',
      operation: 'ListCertificates',
      handle(request) {
        const page = registry.listCertificates({
          pageSize: queryInteger(request, 'pageSize'),
          token: request.query.get('marker'),
          ascending: queryBoolean(request, 'isAscendingOrder'),
        });
        return ok({
          certificates: page.items.map(certificateSummary),
          ...(page.next ? { nextMarker: page.next } : {}),
        });
      },
    },
    {
      method: 'PUT',
      path: '/certificates/{certificateId}',
      operation: 'UpdateCertificate',
      handle(request) {
        const status = request.query.get('newStatus');
        if (status === undefined || status === '') throw invalidRequest("Query parameter 'newStatus' is required.");
        registry.updateCertificate(param(request, 'certificateId'), status);
        return ok();
      },
    },
    {
      method: 'DELETE',
      path: '/certificates/{certificateId}',
      operation: 'DeleteCertificate',
      handle(request) {
        registry.deleteCertificate(param(request, 'certificateId'), queryBoolean(request, 'forceDelete') ?? false);
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/policies/{policyName}',
      operation: 'CreatePolicy',
      handle(request) {
        const { policyDocument: document } = valid(validateWith(createPolicyBodySchema, request.json()));
        const p = registry.createPolicy(param(request, 'policyName'), document);
        return ok({
          policyName: p.policyName,
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          policyVersionId: p.defaultVersionId,
        });
      },
    },
    {
      method: 'GET',
      path: '/policies/{policyName}',
      operation: 'GetPolicy',
      handle(request) {
        const p = registry.getPolicy(param(request, 'policyName'));
        return ok({
          policyName: p.policyName,
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          defaultVersionId: p.defaultVersionId,
          creationDate: epoch(p.creationDate),
          lastModifiedDate: epoch(p.lastModifiedDate),
          generationId: p.generationId,
        });
      },
    },
    {
      method: 'GET',
      path: '/policies',
      operation: 'ListPolicies',
      handle(request) {
        const page = registry.listPolicies({
          pageSize: queryInteger(request, 'pageSize'),
          token: request.query.get('marker'),
          ascending: queryBoolean(request, 'isAscendingOrder'),
        });
        return ok({ policies: page.items.map(policySummary), ...(page.next ? { nextMarker: page.next } : {}) });
      },
    },
    {
      method: 'DELETE',
      path: '/policies/{policyName}',
      operation: 'DeletePolicy',
      handle(request) {
        registry.deletePolicy(param(request, 'policyName'));
        return ok();
      },
    },
    {
      method: 'PUT',
      path: '/target-policies/{policyName}',
      operation: 'AttachPolicy',
      handle(request) {
        const { target } = valid(validateWith(policyTargetBodySchema, request.json()));
        registry.attachPolicy(param(request, 'policyName'), target);
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/target-policies/{policyName}',
      operation: 'DetachPolicy',
      handle(request) {
        const { target } = valid(validateWith(policyTargetBodySchema, request.json()));
        registry.detachPolicy(param(request, 'policyName'), target);
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/attached-policies/{target}',
      operation: 'ListAttachedPolicies',
      handle(request) {
        const recursive = queryBoolean(request, 'recursive') ?? false;
        const page = registry.listAttachedPolicies(
          param(request, 'target'),
          { pageSize: queryInteger(request, 'pageSize'), token: request.query.get('marker') },
          recursive,
        );
        return ok({ policies: page.items.map(policySummary), ...(page.next ? { nextMarker: page.next } : {}) });
      },
    },
    {
      method: 'PUT',
      path: '/things/{thingName}/principals',
      operation: 'AttachThingPrincipal',
      handle(request) {
        const type = request.query.get('thingPrincipalType');
        if (type !== undefined && type !== 'EXCLUSIVE_THING' && type !== 'NON_EXCLUSIVE_THING') {
          throw invalidRequest("'thingPrincipalType' must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING.");
        }
        registry.attachThingPrincipal(param(request, 'thingName'), principalHeader(request));
        return ok();
      },
    },
    {
      method: 'DELETE',
      path: '/things/{thingName}/principals',
      operation: 'DetachThingPrincipal',
      handle(request) {
        registry.detachThingPrincipal(param(request, 'thingName'), principalHeader(request));
        return ok();
      },
    },
    {
      method: 'GET',
      path: '/things/{thingName}/principals',
      operation: 'ListThingPrincipals',
      handle(request) {
        const page = registry.listThingPrincipals(param(request, 'thingName'), {
          pageSize: queryInteger(request, 'maxResults'),
          token: request.query.get('nextToken'),
        });
        return ok({ principals: page.items, ...(page.next ? { nextToken: page.next } : {}) });
      },
    },
    {
      method: 'GET',
      path: '/endpoint',
      operation: 'DescribeEndpoint',
      handle(request) {
        const type = request.query.get('endpointType');
        if (type !== undefined && !ENDPOINT_TYPES.has(type)) {
          throw invalidRequest(`Endpoint type '${type}' is not valid.`);
        }
        return ok({ endpointAddress: deps.endpointAddress() });
      },
    },
  ];
  return { name: 'iot-control-plane', signingNames: ['iot'], routes };
}
