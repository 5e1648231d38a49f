/**
 * Fleet provisioning templates (AWS IoT's CreateProvisioningTemplate family), the part the CLI
 * uses: list, describe, create, delete. The AWS SDK adapter serves AWS IoT Core and the local IoT
 * Core alike. "Not found" is a value (`undefined`/`false`), never an exception; other failures
 * throw the SDK's error.
 */

export type TemplateType = 'FLEET_PROVISIONING' | 'JITP';

export interface PreProvisioningHookSetting {
  readonly targetArn: string;
  readonly payloadVersion?: string;
}

/** A template as ListProvisioningTemplates shows it (no body). */
export interface TemplateSummary {
  readonly templateName: string;
  readonly templateArn: string;
  readonly description?: string;
  readonly enabled: boolean;
  readonly type?: TemplateType | string;
  readonly creationDate?: Date;
  readonly lastModifiedDate?: Date;
}

/** A template as DescribeProvisioningTemplate shows it: its settings and its default version's body. */
export interface TemplateDescription extends TemplateSummary {
  readonly defaultVersionId?: number;
  readonly templateBody: string;
  readonly provisioningRoleArn?: string;
  readonly preProvisioningHook?: PreProvisioningHookSetting;
}

export interface TemplatePage {
  readonly templates: readonly TemplateSummary[];
  readonly nextToken?: string;
}

export interface CreateTemplateRequest {
  readonly templateName: string;
  readonly templateBody: string;
  readonly provisioningRoleArn: string;
  readonly enabled: boolean;
  readonly description?: string;
  readonly preProvisioningHook?: PreProvisioningHookSetting;
}

export interface ProvisioningTemplates {
  listTemplates(page: { maxResults?: number; nextToken?: string }): Promise<TemplatePage>;
  describeTemplate(templateName: string): Promise<TemplateDescription | undefined>;
  /** Creates an enabled or disabled template; returns its ARN. An existing one is an error (ResourceAlreadyExistsException). */
  createTemplate(request: CreateTemplateRequest): Promise<{ readonly templateArn: string }>;
  /** Returns false when there was no such template. */
  deleteTemplate(templateName: string): Promise<boolean>;
}
