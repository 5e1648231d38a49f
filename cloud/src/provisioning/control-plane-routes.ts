import { isJsonObject } from '@pifleet/protocol';
import { type Body, bool, field, required, str } from '../http/body-fields.js';
import { invalidRequest } from '../http/errors.js';
import { ok, queryBoolean, queryInteger } from '../http/iot-control-plane.js';
import { decodePageToken, nextTokenOf } from '../http/page-token.js';
import type { ApiRequest, Route, RouteGroup } from '../http/server.js';
import type { Page } from './store.js';
import type { TemplateType } from './template-language.js';
import {
  type CreateTemplateInput,
  checkTemplateName,
  PROVISIONING_TEMPLATE_LIMITS,
  type ProvisioningTemplates,
  type UpdateTemplateInput,
} from './templates.js';

/**
 * The provisioning-template operations of the IoT control plane (signing name `iot`),
 * wire-compatible with `@aws-sdk/client-iot`: CreateProvisioningTemplate,
 * DescribeProvisioningTemplate, ListProvisioningTemplates, UpdateProvisioningTemplate,
 * DeleteProvisioningTemplate, CreateProvisioningTemplateVersion,
 * DescribeProvisioningTemplateVersion, ListProvisioningTemplateVersions and
 * DeleteProvisioningTemplateVersion, with the paths, query bindings and member names of the IoT
 * service model. Timestamps are epoch seconds (REST-JSON's default). Bodies are read member by
 * member with own-key reads from the server's parsed JSON (already refused when not UTF-8 or
 * deeper than 64 levels), each checked against the API reference's type.
 */

export interface ProvisioningTemplateRoutesDeps {
  readonly templates: ProvisioningTemplates;
}

function hookOf(body: Body): { targetArn: string; payloadVersion?: string } | undefined {
  const v = field(body, 'preProvisioningHook');
  if (v === undefined) return undefined;
  if (!isJsonObject(v)) throw invalidRequest("'preProvisioningHook' must be an object.");
  const targetArn = str(v, 'targetArn');
  if (targetArn === undefined) throw invalidRequest("'preProvisioningHook.targetArn' is required.");
  const payloadVersion = str(v, 'payloadVersion');
  return { targetArn, ...(payloadVersion === undefined ? {} : { payloadVersion }) };
}

function tagsOf(body: Body): { Key: string; Value?: string }[] | undefined {
  const v = field(body, 'tags');
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidRequest("'tags' must be a list.");
  return v.map((tag) => {
    if (!isJsonObject(tag)) throw invalidRequest("'tags' items must be objects.");
    const Key = str(tag, 'Key');
    if (Key === undefined || Key.length < 1 || Key.length > 128)
      throw invalidRequest('A tag Key is 1 to 128 characters.');
    const Value = str(tag, 'Value');
    if (Value !== undefined && Value.length > 256) throw invalidRequest('A tag Value is at most 256 characters.');
    return { Key, ...(Value === undefined ? {} : { Value }) };
  });
}

function typeOf(body: Body): TemplateType | undefined {
  const v = str(body, 'type');
  if (v === undefined) return undefined;
  if (v !== 'FLEET_PROVISIONING' && v !== 'JITP') throw invalidRequest("'type' must be FLEET_PROVISIONING or JITP.");
  return v;
}

function param(request: ApiRequest, name: string): string {
  return request.params[name] ?? '';
}

function versionParam(request: ApiRequest): number {
  const raw = param(request, 'versionId');
  if (!/^\d{1,9}$/.test(raw)) throw invalidRequest("'versionId' must be an integer.");
  return Number(raw);
}

function pageOf(request: ApiRequest): { after: number | undefined; limit: number } {
  const [min, max] = PROVISIONING_TEMPLATE_LIMITS.maxResults;
  const limit = queryInteger(request, 'maxResults') ?? max;
  if (limit < min || limit > max) throw invalidRequest(`'maxResults' must be from ${min} to ${max}.`);
  const after = decodePageToken(request, 'number');
  if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
    throw invalidRequest('The nextToken is not valid.');
  }
  return { after, limit };
}

const nextToken = (page: Page<unknown>) => nextTokenOf(page.next);

const seconds = (ms: number) => ms / 1000;

export function provisioningTemplateRoutes(deps: ProvisioningTemplateRoutesDeps): RouteGroup {
  const { templates } = deps;
  const routes: Route[] = [
    {
      method: 'POST',
      path: '/provisioning-templates',
      operation: 'CreateProvisioningTemplate',
      handle(request) {
        const body = request.json();
        const description = str(body, 'description');
        const enabled = bool(body, 'enabled');
        const preProvisioningHook = hookOf(body);
        const tags = tagsOf(body);
        const type = typeOf(body);
        const input: CreateTemplateInput = {
          templateName: required(body, 'templateName'),
          templateBody: required(body, 'templateBody'),
          provisioningRoleArn: required(body, 'provisioningRoleArn'),
          ...(description === undefined ? {} : { description }),
          ...(enabled === undefined ? {} : { enabled }),
          ...(preProvisioningHook === undefined ? {} : { preProvisioningHook }),
          ...(tags === undefined ? {} : { tags }),
          ...(type === undefined ? {} : { type }),
        };
        const t = templates.create(input);
        return ok({ templateArn: t.templateArn, templateName: t.templateName, defaultVersionId: t.defaultVersionId });
      },
    },
    {
      method: 'GET',
      path: '/provisioning-templates/{templateName}',
      operation: 'DescribeProvisioningTemplate',
      handle(request) {
        const t = templates.describe(param(request, 'templateName'));
        return ok({
          templateArn: t.templateArn,
          templateName: t.templateName,
          ...(t.description === undefined ? {} : { description: t.description }),
          creationDate: seconds(t.creationDate),
          lastModifiedDate: seconds(t.lastModifiedDate),
          defaultVersionId: t.defaultVersionId,
          templateBody: t.templateBody,
          enabled: t.enabled,
          provisioningRoleArn: t.provisioningRoleArn,
          ...(t.preProvisioningHook === undefined ? {} : { preProvisioningHook: t.preProvisioningHook }),
          type: t.type,
        });
      },
    },
    {
      method: 'GET',
      path: '/provisioning-templates',
      operation: 'ListProvisioningTemplates',
      handle(request) {
        const page = templates.list(pageOf(request));
        return ok({
          templates: page.items.map((t) => ({
            templateArn: t.templateArn,
            templateName: t.templateName,
            ...(t.description === undefined ? {} : { description: t.description }),
            creationDate: seconds(t.creationDate),
            lastModifiedDate: seconds(t.lastModifiedDate),
            enabled: t.enabled,
            type: t.type,
          })),
          ...nextToken(page),
        });
      },
    },
    {
      method: 'PATCH',
      path: '/provisioning-templates/{templateName}',
      operation: 'UpdateProvisioningTemplate',
      handle(request) {
        const templateName = param(request, 'templateName');
        checkTemplateName(templateName);
        const body = request.json();
        const description = str(body, 'description');
        const enabled = bool(body, 'enabled');
        const provisioningRoleArn = str(body, 'provisioningRoleArn');
        const preProvisioningHook = hookOf(body);
        const removePreProvisioningHook = bool(body, 'removePreProvisioningHook');
        const rawDefault = field(body, 'defaultVersionId');
        if (rawDefault !== undefined && !(typeof rawDefault === 'number' && Number.isSafeInteger(rawDefault))) {
          throw invalidRequest("'defaultVersionId' must be an integer.");
        }
        const input: UpdateTemplateInput = {
          ...(description === undefined ? {} : { description }),
          ...(enabled === undefined ? {} : { enabled }),
          ...(rawDefault === undefined ? {} : { defaultVersionId: rawDefault as number }),
          ...(provisioningRoleArn === undefined ? {} : { provisioningRoleArn }),
          ...(preProvisioningHook === undefined ? {} : { preProvisioningHook }),
          ...(removePreProvisioningHook === undefined ? {} : { removePreProvisioningHook }),
        };
        templates.update(templateName, input);
        return ok();
      },
    },
    {
      method: 'DELETE',
      path: '/provisioning-templates/{templateName}',
      operation: 'DeleteProvisioningTemplate',
      handle(request) {
        templates.delete(param(request, 'templateName'));
        return ok();
      },
    },
    {
      method: 'POST',
      path: '/provisioning-templates/{templateName}/versions',
      operation: 'CreateProvisioningTemplateVersion',
      handle(request) {
        const templateName = param(request, 'templateName');
        checkTemplateName(templateName);
        const setAsDefault = queryBoolean(request, 'setAsDefault') ?? false;
        const body = request.json();
        const v = templates.createVersion(templateName, required(body, 'templateBody'), setAsDefault);
        return ok({
          templateArn: templates.templateArn(templateName),
          templateName,
          versionId: v.versionId,
          isDefaultVersion: v.isDefaultVersion,
        });
      },
    },
    {
      method: 'GET',
      path: '/provisioning-templates/{templateName}/versions/{versionId}',
      operation: 'DescribeProvisioningTemplateVersion',
      handle(request) {
        const v = templates.describeVersion(param(request, 'templateName'), versionParam(request));
        return ok({
          versionId: v.versionId,
          creationDate: seconds(v.creationDate),
          templateBody: v.templateBody,
          isDefaultVersion: v.isDefaultVersion,
        });
      },
    },
    {
      method: 'GET',
      path: '/provisioning-templates/{templateName}/versions',
      operation: 'ListProvisioningTemplateVersions',
      handle(request) {
        const page = templates.listVersions(param(request, 'templateName'), pageOf(request));
        return ok({
          versions: page.items.map((v) => ({
            versionId: v.versionId,
            creationDate: seconds(v.creationDate),
            isDefaultVersion: v.isDefaultVersion,
          })),
          ...nextToken(page),
        });
      },
    },
    {
      method: 'DELETE',
      path: '/provisioning-templates/{templateName}/versions/{versionId}',
      operation: 'DeleteProvisioningTemplateVersion',
      handle(request) {
        templates.deleteVersion(param(request, 'templateName'), versionParam(request));
        return ok();
      },
    },
  ];
  return { name: 'iot-provisioning-templates', signingNames: ['iot'], routes };
}
