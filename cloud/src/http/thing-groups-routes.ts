import {
  createThingGroupBodySchema,
  createThingTypeBodySchema,
  deprecateThingTypeBodySchema,
  thingGroupMembershipBodySchema,
  updateThingGroupBodySchema,
  validateWith,
} from '@pifleet/protocol';
import type { GroupRef, Registry, ThingTypeRecord } from '../registry/sqlite-registry.js';
import { epoch, ok, queryBoolean, queryInteger, valid } from './iot-control-plane.js';
import type { ApiRequest, Route, RouteGroup } from './server.js';

/**
 * Thing types, static thing groups and the policy targets listing of the IoT control plane,
 * wire-compatible with `@aws-sdk/client-iot` (paths, query bindings, field names of the IoT
 * service model). The rules (deprecation, hierarchy limits, membership) are the registry's.
 */

export interface ThingGroupRoutesDeps {
  readonly registry: Registry;
}

const thingTypeJson = (t: ThingTypeRecord) => ({
  thingTypeName: t.thingTypeName,
  thingTypeArn: t.thingTypeArn,
  thingTypeProperties: {
    ...(t.description === undefined ? {} : { thingTypeDescription: t.description }),
    searchableAttributes: t.searchableAttributes,
  },
  thingTypeMetadata: {
    deprecated: t.deprecated,
    ...(t.deprecationDate === undefined ? {} : { deprecationDate: epoch(t.deprecationDate) }),
    creationDate: epoch(t.creationDate),
  },
});

const groupJson = (g: GroupRef) => ({ groupName: g.groupName, groupArn: g.groupArn });
const nextToken = (next: string | undefined) => (next === undefined ? {} : { nextToken: next });

export function thingGroupRoutes(deps: ThingGroupRoutesDeps): RouteGroup {
  const { registry } = deps;
  const param = (request: ApiRequest, name: string) => request.params[name] as string;

  const routes: Route[] = [
    {
      method: 'POST',
      path: '/thing-types/{thingTypeName}',
      operation: 'CreateThingType',
      handle(request) {
        const { thingTypeProperties: p } = valid(validateWith(createThingTypeBodySchema, request.json()));
        const t = registry.createThingType({
          thingTypeName: param(request, 'thingTypeName'),
          description: p?.thingTypeDescription,
          searchableAttributes: p?.searchableAttributes,
        });
        return ok({ thingTypeName: t.thingTypeName, thingTypeArn: t.thingTypeArn, thingTypeId: t.thingTypeId });
      },
    },
    {
      method: 'GET',
      path: '/thing-types/{thingTypeName}',
      operation: 'DescribeThingType',
      handle(request) {
        const t = registry.describeThingType(param(request, 'thingTypeName'));
        return ok({ ...thingTypeJson(t), thingTypeId: t.thingTypeId });
      },
    },
    {
      method: 'GET',
      path: '/thing-types',
      operation: 'ListThingTypes',
      handle(request) {
        const page = registry.listThingTypes({
          pageSize: queryInteger(request, 'maxResults'),
          token: request.query.get('nextToken'),
          thingTypeName: request.query.get('thingTypeName'),
        });
        return ok({ thingTypes: page.items.map(thingTypeJson), ...nextToken(page.next) });
      },
    },
    {
      method: 'POST',
      path: '/thing-types/{thingTypeName}/deprecate',
      operation: 'DeprecateThingType',
      handle(request) {
        const { undoDeprecate } = valid(validateWith(deprecateThingTypeBodySchema, request.json()));
        registry.deprecateThingType(param(request, 'thingTypeName'), undoDeprecate ?? false);
        return ok();
      },
    },
    {
      method: 'DELETE',
      path: '/thing-types/{thingTypeName}',
      operation: 'DeleteThingType',
      handle(request) {
        registry.deleteThingType(param(request, 'thingTypeName'));
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/thing-groups/{thingGroupName}',
      operation: 'CreateThingGroup',
      handle(request) {
        const body = valid(validateWith(createThingGroupBodySchema, request.json()));
        const g = registry.createThingGroup({
          thingGroupName: param(request, 'thingGroupName'),
          parentGroupName: body.parentGroupName,
          description: body.thingGroupProperties?.thingGroupDescription,
          attributes: body.thingGroupProperties?.attributePayload?.attributes,
        });
        return ok({ thingGroupName: g.thingGroupName, thingGroupArn: g.thingGroupArn, thingGroupId: g.thingGroupId });
      },
    },
    {
      method: 'GET',
      path: '/thing-groups/{thingGroupName}',
      operation: 'DescribeThingGroup',
      handle(request) {
        const g = registry.describeThingGroup(param(request, 'thingGroupName'));
        return ok({
          thingGroupName: g.thingGroupName,
          thingGroupId: g.thingGroupId,
          thingGroupArn: g.thingGroupArn,
          version: g.version,
          thingGroupProperties: {
            ...(g.description === undefined ? {} : { thingGroupDescription: g.description }),
            attributePayload: { attributes: g.attributes },
          },
          thingGroupMetadata: {
            ...(g.parentGroupName === undefined ? {} : { parentGroupName: g.parentGroupName }),
            rootToParentThingGroups: g.rootToParentThingGroups.map(groupJson),
            creationDate: epoch(g.creationDate),
          },
          status: 'ACTIVE',
        });
      },
    },
    {
      method: 'GET',
      path: '/thing-groups',
      operation: 'ListThingGroups',
      handle(request) {
        const q = request.query;
        const page = registry.listThingGroups({
          pageSize: queryInteger(request, 'maxResults'),
          token: q.get('nextToken'),
          parentGroup: q.get('parentGroup'),
          namePrefixFilter: q.get('namePrefixFilter'),
          recursive: queryBoolean(request, 'recursive'),
        });
        return ok({ thingGroups: page.items.map(groupJson), ...nextToken(page.next) });
      },
    },
    {
      method: 'PATCH',
      path: '/thing-groups/{thingGroupName}',
      operation: 'UpdateThingGroup',
      handle(request) {
        const { thingGroupProperties: p, expectedVersion } = valid(
          validateWith(updateThingGroupBodySchema, request.json()),
        );
        const version = registry.updateThingGroup({
          thingGroupName: param(request, 'thingGroupName'),
          description: p?.thingGroupDescription,
          attributes: p?.attributePayload?.attributes,
          merge: p?.attributePayload?.merge ?? false,
          expectedVersion,
        });
        return ok({ version });
      },
    },
    {
      method: 'DELETE',
      path: '/thing-groups/{thingGroupName}',
      operation: 'DeleteThingGroup',
      handle(request) {
        registry.deleteThingGroup({
          thingGroupName: param(request, 'thingGroupName'),
          expectedVersion: queryInteger(request, 'expectedVersion'),
        });
        return ok();
      },
    },
    {
      method: 'PUT',
      path: '/thing-groups/addThingToThingGroup',
      operation: 'AddThingToThingGroup',
      handle(request) {
        // overrideDynamicGroups is read and has no effect: the local core has no dynamic groups.
        const body = valid(validateWith(thingGroupMembershipBodySchema, request.json()));
        registry.addThingToThingGroup(body);
        return ok();
      },
    },
    {
      method: 'PUT',
      path: '/thing-groups/removeThingFromThingGroup',
      operation: 'RemoveThingFromThingGroup',
      handle(request) {
        const body = valid(validateWith(thingGroupMembershipBodySchema, request.json()));
        registry.removeThingFromThingGroup(body);
        return ok();
      },
    },
    {
      method: 'GET',
      path: '/thing-groups/{thingGroupName}/things',
      operation: 'ListThingsInThingGroup',
      handle(request) {
        const page = registry.listThingsInThingGroup(param(request, 'thingGroupName'), {
          pageSize: queryInteger(request, 'maxResults'),
          token: request.query.get('nextToken'),
          recursive: queryBoolean(request, 'recursive'),
        });
        return ok({ things: page.items, ...nextToken(page.next) });
      },
    },
    {
      method: 'GET',
      path: '/things/{thingName}/thing-groups',
      operation: 'ListThingGroupsForThing',
      handle(request) {
        const page = registry.listThingGroupsForThing(param(request, 'thingName'), {
          pageSize: queryInteger(request, 'maxResults'),
          token: request.query.get('nextToken'),
        });
        return ok({ thingGroups: page.items.map(groupJson), ...nextToken(page.next) });
      },
    },
    {
      method: 'POST',
      path: '/policy-targets/{policyName}',
      operation: 'ListTargetsForPolicy',
      handle(request) {
        const page = registry.listTargetsForPolicy(param(request, 'policyName'), {
          pageSize: queryInteger(request, 'pageSize'),
          token: request.query.get('marker'),
        });
        return ok({ targets: page.items, ...(page.next === undefined ? {} : { nextMarker: page.next }) });
      },
    },
  ];
  return { name: 'iot-thing-groups', signingNames: ['iot'], routes };
}
