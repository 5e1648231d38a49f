import {
  CreateProvisioningTemplateCommand,
  DeleteProvisioningTemplateCommand,
  DescribeProvisioningTemplateCommand,
  type IoTClient,
  ListProvisioningTemplatesCommand,
} from '@aws-sdk/client-iot';
import type { ProvisioningTemplates, TemplateSummary } from '../ports/templates.js';
import { type AwsCallDeps, awsCaller, isNotFound } from './aws-call.js';

export interface AwsIotTemplatesDeps extends AwsCallDeps {
  readonly client: IoTClient;
}

/**
 * IoT's API rates of the template operations pifleet sends, per second, a little under AWS IoT
 * Core's quotas ("AWS IoT Core endpoints and quotas": 10 TPS for the template APIs), as the
 * registry's rates are. A command sends one or a few of them, so the rate only matters to a loop.
 */
export const TEMPLATE_API_RATES: Readonly<Record<string, number>> = {
  ListProvisioningTemplates: 8,
  DescribeProvisioningTemplate: 8,
  CreateProvisioningTemplate: 8,
  DeleteProvisioningTemplate: 8,
};

type SdkSummary = {
  templateName?: string | undefined;
  templateArn?: string | undefined;
  description?: string | undefined;
  enabled?: boolean | undefined;
  type?: string | undefined;
  creationDate?: Date | undefined;
  lastModifiedDate?: Date | undefined;
};

function summary(t: SdkSummary): TemplateSummary {
  return {
    templateName: t.templateName ?? '',
    templateArn: t.templateArn ?? '',
    enabled: t.enabled === true,
    ...(t.description ? { description: t.description } : {}),
    ...(t.type ? { type: t.type } : {}),
    ...(t.creationDate ? { creationDate: t.creationDate } : {}),
    ...(t.lastModifiedDate ? { lastModifiedDate: t.lastModifiedDate } : {}),
  };
}

/** {@link ProvisioningTemplates} over `@aws-sdk/client-iot`: every call rate limited and retried on throttling. */
export function createAwsIotTemplates(deps: AwsIotTemplatesDeps): ProvisioningTemplates {
  const { client } = deps;
  const { call, requestOptions: opts } = awsCaller(deps);
  return {
    async listTemplates({ maxResults, nextToken }) {
      const r = await call('ListProvisioningTemplates', () =>
        client.send(
          new ListProvisioningTemplatesCommand({
            ...(maxResults !== undefined ? { maxResults } : {}),
            ...(nextToken !== undefined ? { nextToken } : {}),
          }),
          opts,
        ),
      );
      return {
        templates: (r.templates ?? []).map(summary),
        ...(r.nextToken ? { nextToken: r.nextToken } : {}),
      };
    },
    async describeTemplate(templateName) {
      try {
        const r = await call('DescribeProvisioningTemplate', () =>
          client.send(new DescribeProvisioningTemplateCommand({ templateName }), opts),
        );
        const hook = r.preProvisioningHook;
        return {
          ...summary(r),
          templateBody: r.templateBody ?? '',
          ...(r.defaultVersionId !== undefined ? { defaultVersionId: r.defaultVersionId } : {}),
          ...(r.provisioningRoleArn ? { provisioningRoleArn: r.provisioningRoleArn } : {}),
          ...(hook?.targetArn
            ? {
                preProvisioningHook: {
                  targetArn: hook.targetArn,
                  ...(hook.payloadVersion ? { payloadVersion: hook.payloadVersion } : {}),
                },
              }
            : {}),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async createTemplate(request) {
      const r = await call('CreateProvisioningTemplate', () =>
        client.send(
          new CreateProvisioningTemplateCommand({
            templateName: request.templateName,
            templateBody: request.templateBody,
            provisioningRoleArn: request.provisioningRoleArn,
            enabled: request.enabled,
            type: 'FLEET_PROVISIONING',
            ...(request.description !== undefined ? { description: request.description } : {}),
            ...(request.preProvisioningHook ? { preProvisioningHook: { ...request.preProvisioningHook } } : {}),
          }),
          opts,
        ),
      );
      if (!r.templateArn) throw new Error('the control plane created a template without an ARN');
      return { templateArn: r.templateArn };
    },
    async deleteTemplate(templateName) {
      try {
        await call('DeleteProvisioningTemplate', () =>
          client.send(new DeleteProvisioningTemplateCommand({ templateName }), opts),
        );
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
  };
}
