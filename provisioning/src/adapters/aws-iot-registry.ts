import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  CreateThingTypeCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DeleteThingGroupCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  DescribeThingTypeCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingGroupsCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  ListThingsInThingGroupCommand,
  RemoveThingFromThingGroupCommand,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { describeIssues, formatPath, parseIotPolicyDocument } from '@pifleet/protocol';
import { ConflictError } from '../errors.js';
import type { DeviceRegistry, IssuedCertificate, ThingGroupRecord, ThingRecord } from '../ports/registry.js';
import { type AwsCallDeps, awsCaller, awsErrorName, isNotFound } from './aws-call.js';

export interface AwsIotRegistryDeps extends AwsCallDeps {
  readonly client: IoTClient;
}

const isAlreadyExists = (err: unknown) => awsErrorName(err) === 'ResourceAlreadyExistsException';

/** {@link DeviceRegistry} over `@aws-sdk/client-iot`: every call rate limited and retried on throttling. */
export function createAwsIotRegistry(deps: AwsIotRegistryDeps): DeviceRegistry {
  const { client } = deps;
  const { call, requestOptions: opts } = awsCaller(deps);

  const toThing = (t: {
    thingName?: string | undefined;
    thingArn?: string | undefined;
    attributes?: Record<string, string> | undefined;
    version?: number | undefined;
    thingTypeName?: string | undefined;
  }): ThingRecord => ({
    thingName: t.thingName ?? '',
    ...(t.thingArn ? { thingArn: t.thingArn } : {}),
    attributes: t.attributes ?? {},
    ...(t.version !== undefined ? { version: t.version } : {}),
    ...(t.thingTypeName ? { thingTypeName: t.thingTypeName } : {}),
  });

  /** Every page of a nextToken-paged list, `pick` taking the names out of each. */
  async function allPages<R extends { nextToken?: string | undefined }>(
    fetch: (nextToken: string | undefined) => Promise<R>,
    pick: (r: R) => string[],
  ): Promise<string[]> {
    const out: string[] = [];
    let nextToken: string | undefined;
    do {
      const r = await fetch(nextToken);
      out.push(...pick(r));
      nextToken = r.nextToken ?? undefined;
    } while (nextToken);
    return out;
  }

  async function describeGroup(thingGroupName: string): Promise<ThingGroupRecord | undefined> {
    try {
      const r = await call('DescribeThingGroup', () =>
        client.send(new DescribeThingGroupCommand({ thingGroupName }), opts),
      );
      const parent = r.thingGroupMetadata?.parentGroupName;
      const description = r.thingGroupProperties?.thingGroupDescription;
      return {
        thingGroupName: r.thingGroupName ?? thingGroupName,
        thingGroupArn: r.thingGroupArn ?? '',
        ...(parent ? { parentGroupName: parent } : {}),
        ...(description ? { description } : {}),
        path: (r.thingGroupMetadata?.rootToParentThingGroups ?? []).flatMap((g) => (g.groupName ? [g.groupName] : [])),
        attributes: r.thingGroupProperties?.attributePayload?.attributes ?? {},
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  const issued = (r: {
    certificateId?: string | undefined;
    certificateArn?: string | undefined;
    certificatePem?: string | undefined;
    keyPair?: { PrivateKey?: string | undefined } | undefined;
  }): IssuedCertificate => {
    if (!r.certificateId || !r.certificateArn || !r.certificatePem) {
      throw new Error('the control plane returned a certificate without id, ARN or PEM');
    }
    return {
      certificateId: r.certificateId,
      certificateArn: r.certificateArn,
      certificatePem: r.certificatePem,
      ...(r.keyPair?.PrivateKey ? { privateKeyPem: r.keyPair.PrivateKey } : {}),
    };
  };

  return {
    async describeThing(thingName) {
      try {
        return toThing(await call('DescribeThing', () => client.send(new DescribeThingCommand({ thingName }), opts)));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async createThing(thingName, attributes, thingTypeName) {
      try {
        const r = await call('CreateThing', () =>
          client.send(
            new CreateThingCommand({
              thingName,
              ...(thingTypeName !== undefined ? { thingTypeName } : {}),
              ...(Object.keys(attributes).length > 0 ? { attributePayload: { attributes: { ...attributes } } } : {}),
            }),
            opts,
          ),
        );
        return {
          thingName,
          ...(r.thingArn ? { thingArn: r.thingArn } : {}),
          attributes,
          ...(thingTypeName !== undefined ? { thingTypeName } : {}),
        };
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        const existing = await this.describeThing(thingName);
        if (!existing) throw err;
        return existing;
      }
    },
    async updateThingAttributes(thingName, attributes) {
      await call('UpdateThing', () =>
        client.send(
          new UpdateThingCommand({ thingName, attributePayload: { attributes: { ...attributes }, merge: true } }),
          opts,
        ),
      );
    },
    async deleteThing(thingName) {
      try {
        await call('DeleteThing', () => client.send(new DeleteThingCommand({ thingName }), opts));
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    async listThings(page) {
      const r = await call('ListThings', () =>
        client.send(
          new ListThingsCommand({
            ...(page.maxResults !== undefined ? { maxResults: page.maxResults } : {}),
            ...(page.nextToken !== undefined ? { nextToken: page.nextToken } : {}),
          }),
          opts,
        ),
      );
      return { things: (r.things ?? []).map(toThing), ...(r.nextToken ? { nextToken: r.nextToken } : {}) };
    },
    async listThingPrincipals(thingName) {
      const out: string[] = [];
      let nextToken: string | undefined;
      try {
        do {
          const token = nextToken;
          const r = await call('ListThingPrincipals', () =>
            client.send(new ListThingPrincipalsCommand({ thingName, ...(token ? { nextToken: token } : {}) }), opts),
          );
          out.push(...(r.principals ?? []));
          nextToken = r.nextToken ?? undefined;
        } while (nextToken);
      } catch (err) {
        if (isNotFound(err)) return [];
        throw err;
      }
      return out;
    },
    async attachThingPrincipal(thingName, principal) {
      await call('AttachThingPrincipal', () =>
        client.send(new AttachThingPrincipalCommand({ thingName, principal }), opts),
      );
    },
    async detachThingPrincipal(thingName, principal) {
      try {
        await call('DetachThingPrincipal', () =>
          client.send(new DetachThingPrincipalCommand({ thingName, principal }), opts),
        );
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    async createKeysAndCertificate() {
      return issued(
        await call('CreateKeysAndCertificate', () =>
          client.send(new CreateKeysAndCertificateCommand({ setAsActive: true }), opts),
        ),
      );
    },
    async createCertificateFromCsr(certificateSigningRequest) {
      return issued(
        await call('CreateCertificateFromCsr', () =>
          client.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest, setAsActive: true }), opts),
        ),
      );
    },
    async describeCertificate(certificateId) {
      try {
        const r = await call('DescribeCertificate', () =>
          client.send(new DescribeCertificateCommand({ certificateId }), opts),
        );
        const d = r.certificateDescription;
        if (!d?.certificateId || !d.certificateArn) return undefined;
        return {
          certificateId: d.certificateId,
          certificateArn: d.certificateArn,
          status: d.status ?? 'UNKNOWN',
          ...(d.creationDate ? { creationDate: d.creationDate } : {}),
          ...(d.certificatePem ? { certificatePem: d.certificatePem } : {}),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async setCertificateStatus(certificateId, newStatus) {
      await call('UpdateCertificate', () =>
        client.send(new UpdateCertificateCommand({ certificateId, newStatus }), opts),
      );
    },
    async deleteCertificate(certificateId) {
      try {
        await call('DeleteCertificate', () => client.send(new DeleteCertificateCommand({ certificateId }), opts));
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    async getPolicy(policyName) {
      let text: string | undefined;
      try {
        text = (await call('GetPolicy', () => client.send(new GetPolicyCommand({ policyName }), opts))).policyDocument;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      if (!text) return undefined;
      const parsed = parseIotPolicyDocument(text);
      if (parsed.ok) return parsed.value;
      const problem =
        parsed.reason === 'schema'
          ? describeIssues(parsed.issues.map((i) => ({ path: formatPath(i.path), message: i.message })))
          : parsed.message;
      throw new ConflictError(
        'POLICY_UNREADABLE',
        `policy ${policyName} holds a document pifleet cannot read: ${problem}`,
        {
          hint: `fix the policy's document, or delete policy ${policyName} so that pifleet creates it again`,
          data: { policyName },
        },
      );
    },
    async createPolicy(policyName, document) {
      try {
        await call('CreatePolicy', () =>
          client.send(new CreatePolicyCommand({ policyName, policyDocument: JSON.stringify(document) }), opts),
        );
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    },
    async attachPolicy(policyName, target) {
      await call('AttachPolicy', () => client.send(new AttachPolicyCommand({ policyName, target }), opts));
    },
    async detachPolicy(policyName, target) {
      try {
        await call('DetachPolicy', () => client.send(new DetachPolicyCommand({ policyName, target }), opts));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async listAttachedPolicies(target) {
      const out: string[] = [];
      let marker: string | undefined;
      try {
        do {
          const m = marker;
          const r = await call('ListAttachedPolicies', () =>
            client.send(new ListAttachedPoliciesCommand({ target, ...(m ? { marker: m } : {}) }), opts),
          );
          for (const p of r.policies ?? []) if (p.policyName) out.push(p.policyName);
          marker = r.nextMarker ?? undefined;
        } while (marker);
      } catch (err) {
        if (isNotFound(err)) return [];
        throw err;
      }
      return out;
    },
    async describeThingType(thingTypeName) {
      try {
        const r = await call('DescribeThingType', () =>
          client.send(new DescribeThingTypeCommand({ thingTypeName }), opts),
        );
        return { thingTypeName, deprecated: r.thingTypeMetadata?.deprecated === true };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async createThingType(thingTypeName) {
      try {
        await call('CreateThingType', () => client.send(new CreateThingTypeCommand({ thingTypeName }), opts));
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    },
    async setThingType(thingName, thingTypeName) {
      await call('UpdateThing', () => client.send(new UpdateThingCommand({ thingName, thingTypeName }), opts));
    },
    describeThingGroup: describeGroup,
    async createThingGroup(thingGroupName, options) {
      try {
        await call('CreateThingGroup', () =>
          client.send(
            new CreateThingGroupCommand({
              thingGroupName,
              ...(options.parentGroupName !== undefined ? { parentGroupName: options.parentGroupName } : {}),
              ...(options.description !== undefined
                ? { thingGroupProperties: { thingGroupDescription: options.description } }
                : {}),
            }),
            opts,
          ),
        );
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      const group = await describeGroup(thingGroupName);
      if (!group) throw new Error(`thing group ${thingGroupName} is not there after CreateThingGroup`);
      return group;
    },
    async listThingGroups({ parentGroup, recursive }) {
      return allPages(
        (nextToken) =>
          call('ListThingGroups', () =>
            client.send(
              new ListThingGroupsCommand({
                ...(parentGroup !== undefined ? { parentGroup } : {}),
                ...(recursive !== undefined ? { recursive } : {}),
                ...(nextToken ? { nextToken } : {}),
              }),
              opts,
            ),
          ),
        (r) => (r.thingGroups ?? []).flatMap((g) => (g.groupName ? [g.groupName] : [])),
      );
    },
    async deleteThingGroup(thingGroupName) {
      // DeleteThingGroup succeeds for a group that is not there, so ask first to tell the operator.
      if (!(await describeGroup(thingGroupName))) return false;
      await call('DeleteThingGroup', () => client.send(new DeleteThingGroupCommand({ thingGroupName }), opts));
      return true;
    },
    async addThingToThingGroup(thingGroupName, thingName) {
      await call('AddThingToThingGroup', () =>
        client.send(new AddThingToThingGroupCommand({ thingGroupName, thingName }), opts),
      );
    },
    async removeThingFromThingGroup(thingGroupName, thingName) {
      await call('RemoveThingFromThingGroup', () =>
        client.send(new RemoveThingFromThingGroupCommand({ thingGroupName, thingName }), opts),
      );
    },
    async listThingsInThingGroup(thingGroupName, recursive) {
      return allPages(
        (nextToken) =>
          call('ListThingsInThingGroup', () =>
            client.send(
              new ListThingsInThingGroupCommand({ thingGroupName, recursive, ...(nextToken ? { nextToken } : {}) }),
              opts,
            ),
          ),
        (r) => r.things ?? [],
      );
    },
    async listThingGroupsForThing(thingName) {
      try {
        return await allPages(
          (nextToken) =>
            call('ListThingGroupsForThing', () =>
              client.send(new ListThingGroupsForThingCommand({ thingName, ...(nextToken ? { nextToken } : {}) }), opts),
            ),
          (r) => (r.thingGroups ?? []).flatMap((g) => (g.groupName ? [g.groupName] : [])),
        );
      } catch (err) {
        if (isNotFound(err)) return [];
        throw err;
      }
    },
    async describeEndpoint(endpointType) {
      const r = await call('DescribeEndpoint', () => client.send(new DescribeEndpointCommand({ endpointType }), opts));
      if (!r.endpointAddress) throw new Error(`DescribeEndpoint returned no address for ${endpointType}`);
      return r.endpointAddress;
    },
  };
}
