import { ApiError, invalidRequest } from '../http/errors.js';
import type { Page, PreProvisioningHook, ProvisioningTemplateStore, TemplateRecord, VersionRecord } from './store.js';
import { checkProvisioningTemplate, type ProvisioningTemplate, type TemplateType } from './template-language.js';

/**
 * The provisioning templates of the local IoT Core: the operations behind the control-plane
 * routes (CreateProvisioningTemplate … DeleteProvisioningTemplateVersion), with the limits and
 * errors of the IoT API reference, and {@link ProvisioningTemplates.getTemplateForProvisioning}
 * for the device-side RegisterThing. Every refusal is an {@link ApiError} with IoT's exception name
 * and HTTP status; the store is changed only when the whole operation is valid.
 */

/**
 * IoT's limits. The field constraints are the IoT API reference's (each operation's page and the
 * ProvisioningHook data type). The two quotas (5 versions a template, 256 templates an account)
 * are the fleet provisioning rows of "AWS IoT Core endpoints and quotas" as recalled: that table
 * was not in the reference set when they were written, so check it before relying on them.
 */
export const PROVISIONING_TEMPLATE_LIMITS = {
  /** templateName: "[0-9A-Za-z_-]+", length 1–36. */
  templateName: /^[0-9A-Za-z_-]{1,36}$/,
  /** description: length 0–500, "[^\p{C}]*". */
  maxDescriptionChars: 500,
  /** provisioningRoleArn: length 20–2048. */
  roleArnChars: [20, 2048] as const,
  /** ProvisioningHook.targetArn: length 0–2048. */
  maxTargetArnChars: 2048,
  /** ProvisioningHook.payloadVersion: length 10–32, "^[0-9-]+$" (the one valid version is 2020-04-01). */
  payloadVersion: /^[0-9-]{10,32}$/,
  /** Fleet provisioning quota: versions of one template. */
  maxVersionsPerTemplate: 5,
  /** Fleet provisioning quota: templates per account and Region. */
  maxTemplates: 256,
  /** maxResults of both list operations: 1–250. */
  maxResults: [1, 250] as const,
} as const;

/** The payload version AWS documents for the pre-provisioning hook; the default when none is given. */
export const DEFAULT_HOOK_PAYLOAD_VERSION = '2020-04-01';

export interface CreateTemplateInput {
  readonly templateName: string;
  readonly templateBody: string;
  readonly provisioningRoleArn: string;
  readonly description?: string;
  readonly enabled?: boolean;
  readonly preProvisioningHook?: { readonly targetArn: string; readonly payloadVersion?: string };
  readonly tags?: readonly { readonly Key: string; readonly Value?: string }[];
  readonly type?: TemplateType;
}

export interface UpdateTemplateInput {
  readonly description?: string;
  readonly enabled?: boolean;
  readonly defaultVersionId?: number;
  readonly provisioningRoleArn?: string;
  readonly preProvisioningHook?: { readonly targetArn: string; readonly payloadVersion?: string };
  readonly removePreProvisioningHook?: boolean;
}

/** A template as DescribeProvisioningTemplate shows it: its settings and its default version's body. */
export interface TemplateView extends TemplateRecord {
  readonly templateArn: string;
  readonly templateBody: string;
}

export interface VersionView extends VersionRecord {
  readonly isDefaultVersion: boolean;
}

/** What RegisterThing needs of a template: its default version, checked, and its settings. */
export interface TemplateForProvisioning {
  readonly templateName: string;
  readonly templateArn: string;
  readonly enabled: boolean;
  readonly type: TemplateType;
  readonly provisioningRoleArn: string;
  readonly preProvisioningHook?: PreProvisioningHook;
  readonly defaultVersionId: number;
  readonly templateBody: string;
  /** The default version's body, parsed and statically checked (evaluate it with evaluateCheckedTemplate). */
  readonly template: ProvisioningTemplate;
}

export interface ProvisioningTemplates {
  create(input: CreateTemplateInput): TemplateView;
  describe(templateName: string): TemplateView;
  /** Templates in creation order, without their bodies (ListProvisioningTemplates shows none). */
  list(page: { after?: number | undefined; limit: number }): Page<TemplateRecord & { readonly templateArn: string }>;
  update(templateName: string, input: UpdateTemplateInput): void;
  delete(templateName: string): void;
  createVersion(templateName: string, templateBody: string, setAsDefault: boolean): VersionView;
  describeVersion(templateName: string, versionId: number): VersionView;
  listVersions(templateName: string, page: { after?: number | undefined; limit: number }): Page<VersionView>;
  deleteVersion(templateName: string, versionId: number): void;
  templateArn(templateName: string): string;
  /** The template by name for RegisterThing; undefined when there is none. */
  getTemplateForProvisioning(templateName: string): TemplateForProvisioning | undefined;
}

export interface ProvisioningTemplatesDeps {
  readonly store: ProvisioningTemplateStore;
  readonly region: string;
  readonly accountId: string;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

const notFound = (templateName: string) =>
  new ApiError('ResourceNotFoundException', 404, `The provisioning template ${templateName} does not exist.`);

/** Control characters (Unicode category C) are refused in a description, as IoT's pattern says. */
const CONTROL = /\p{C}/u;

export function checkTemplateName(templateName: string): void {
  if (!PROVISIONING_TEMPLATE_LIMITS.templateName.test(templateName)) {
    throw invalidRequest(
      `'templateName' must be 1 to 36 characters of [0-9A-Za-z_-]; '${templateName.slice(0, 64)}' is not.`,
    );
  }
}

function checkDescription(description: string | undefined): void {
  if (description === undefined) return;
  if (description.length > PROVISIONING_TEMPLATE_LIMITS.maxDescriptionChars || CONTROL.test(description)) {
    throw invalidRequest("'description' must be at most 500 characters without control characters.");
  }
}

function checkRoleArn(arn: string): void {
  const [min, max] = PROVISIONING_TEMPLATE_LIMITS.roleArnChars;
  if (arn.length < min || arn.length > max) {
    throw invalidRequest(`'provisioningRoleArn' must be ${min} to ${max} characters.`);
  }
}

function hook(input: { readonly targetArn: string; readonly payloadVersion?: string }): PreProvisioningHook {
  if (input.targetArn.length > PROVISIONING_TEMPLATE_LIMITS.maxTargetArnChars || input.targetArn === '') {
    throw invalidRequest("'preProvisioningHook.targetArn' must be 1 to 2048 characters.");
  }
  const payloadVersion = input.payloadVersion ?? DEFAULT_HOOK_PAYLOAD_VERSION;
  if (!PROVISIONING_TEMPLATE_LIMITS.payloadVersion.test(payloadVersion)) {
    throw invalidRequest(
      "'preProvisioningHook.payloadVersion' must be 10 to 32 characters of [0-9-], e.g. 2020-04-01.",
    );
  }
  return { targetArn: input.targetArn, payloadVersion };
}

/** The body's static check as IoT answers it: 400 InvalidRequestException with the reason. */
function checkBody(templateBody: string, type: TemplateType): ProvisioningTemplate {
  const checked = checkProvisioningTemplate(templateBody, { type });
  if (!checked.ok) throw invalidRequest(`The template body is not valid: ${checked.message}`);
  return checked.template;
}

export function createProvisioningTemplates(deps: ProvisioningTemplatesDeps): ProvisioningTemplates {
  const { store } = deps;
  const templateArn = (name: string) => `arn:aws:iot:${deps.region}:${deps.accountId}:provisioningtemplate/${name}`;

  function existing(templateName: string): TemplateRecord {
    checkTemplateName(templateName);
    const t = store.getTemplate(templateName);
    if (t === undefined) throw notFound(templateName);
    return t;
  }

  function view(t: TemplateRecord): TemplateView {
    const body = store.getVersion(t.templateName, t.defaultVersionId);
    if (body === undefined) {
      throw new ApiError('InternalFailureException', 500, `The default version of ${t.templateName} is missing.`);
    }
    return { ...t, templateArn: templateArn(t.templateName), templateBody: body.templateBody };
  }

  const versionView = (t: TemplateRecord, v: VersionRecord): VersionView => ({
    ...v,
    isDefaultVersion: v.versionId === t.defaultVersionId,
  });

  return {
    templateArn,

    create(input) {
      checkTemplateName(input.templateName);
      checkDescription(input.description);
      checkRoleArn(input.provisioningRoleArn);
      const type = input.type ?? 'FLEET_PROVISIONING';
      if (input.preProvisioningHook !== undefined && type !== 'FLEET_PROVISIONING') {
        throw invalidRequest('A pre-provisioning hook is supported only for FLEET_PROVISIONING templates.');
      }
      const preProvisioningHook = input.preProvisioningHook === undefined ? undefined : hook(input.preProvisioningHook);
      checkBody(input.templateBody, type);
      return store.transaction(() => {
        if (store.getTemplate(input.templateName) !== undefined) {
          throw new ApiError(
            'ResourceAlreadyExistsException',
            409,
            `The provisioning template ${input.templateName} already exists.`,
            {
              fields: { resourceId: input.templateName, resourceArn: templateArn(input.templateName) },
            },
          );
        }
        if (store.countTemplates() >= PROVISIONING_TEMPLATE_LIMITS.maxTemplates) {
          throw new ApiError(
            'LimitExceededException',
            410,
            `An account has at most ${PROVISIONING_TEMPLATE_LIMITS.maxTemplates} provisioning templates.`,
          );
        }
        const now = deps.now();
        const record: TemplateRecord = {
          templateName: input.templateName,
          ...(input.description === undefined ? {} : { description: input.description }),
          // "enabled: True to enable the provisioning template, otherwise false" (default false).
          enabled: input.enabled ?? false,
          provisioningRoleArn: input.provisioningRoleArn,
          ...(preProvisioningHook === undefined ? {} : { preProvisioningHook }),
          type,
          ...(input.tags === undefined ? {} : { tags: input.tags }),
          creationDate: now,
          lastModifiedDate: now,
          defaultVersionId: 1,
          nextVersionId: 2,
        };
        store.insertTemplate(record);
        store.insertVersion(record.templateName, { versionId: 1, templateBody: input.templateBody, creationDate: now });
        return view(record);
      });
    },

    describe: (templateName) => view(existing(templateName)),

    list: ({ after, limit }) => {
      const page = store.listTemplates(after, limit);
      return { ...page, items: page.items.map((t) => ({ ...t, templateArn: templateArn(t.templateName) })) };
    },

    update(templateName, input) {
      checkDescription(input.description);
      if (input.provisioningRoleArn !== undefined) checkRoleArn(input.provisioningRoleArn);
      if (input.removePreProvisioningHook === true && input.preProvisioningHook !== undefined) {
        throw invalidRequest('preProvisioningHook and removePreProvisioningHook cannot be given together.');
      }
      const newHook = input.preProvisioningHook === undefined ? undefined : hook(input.preProvisioningHook);
      store.transaction(() => {
        const t = existing(templateName);
        if (newHook !== undefined && t.type !== 'FLEET_PROVISIONING') {
          throw invalidRequest('A pre-provisioning hook is supported only for FLEET_PROVISIONING templates.');
        }
        if (
          input.defaultVersionId !== undefined &&
          store.getVersion(templateName, input.defaultVersionId) === undefined
        ) {
          throw new ApiError(
            'ResourceNotFoundException',
            404,
            `Version ${input.defaultVersionId} of the provisioning template ${templateName} does not exist.`,
          );
        }
        const { preProvisioningHook: oldHook, ...rest } = t;
        const keptHook = input.removePreProvisioningHook === true ? undefined : (newHook ?? oldHook);
        store.updateTemplate({
          ...rest,
          ...(input.description === undefined ? {} : { description: input.description }),
          ...(input.enabled === undefined ? {} : { enabled: input.enabled }),
          ...(input.provisioningRoleArn === undefined ? {} : { provisioningRoleArn: input.provisioningRoleArn }),
          ...(input.defaultVersionId === undefined ? {} : { defaultVersionId: input.defaultVersionId }),
          ...(keptHook === undefined ? {} : { preProvisioningHook: keptHook }),
          lastModifiedDate: deps.now(),
        });
      });
    },

    delete(templateName) {
      existing(templateName);
      store.deleteTemplate(templateName);
    },

    createVersion(templateName, templateBody, setAsDefault) {
      const t = existing(templateName);
      checkBody(templateBody, t.type);
      return store.transaction(() => {
        const current = existing(templateName);
        if (store.countVersions(templateName) >= PROVISIONING_TEMPLATE_LIMITS.maxVersionsPerTemplate) {
          throw new ApiError(
            'VersionsLimitExceededException',
            409,
            `The provisioning template ${templateName} has ${PROVISIONING_TEMPLATE_LIMITS.maxVersionsPerTemplate} versions, the most it may have: delete one first.`,
          );
        }
        const now = deps.now();
        const v: VersionRecord = { versionId: current.nextVersionId, templateBody, creationDate: now };
        store.insertVersion(templateName, v);
        const updated: TemplateRecord = {
          ...current,
          nextVersionId: current.nextVersionId + 1,
          lastModifiedDate: now,
          ...(setAsDefault ? { defaultVersionId: v.versionId } : {}),
        };
        store.updateTemplate(updated);
        return versionView(updated, v);
      });
    },

    describeVersion(templateName, versionId) {
      const t = existing(templateName);
      const v = store.getVersion(templateName, versionId);
      if (v === undefined) {
        throw new ApiError(
          'ResourceNotFoundException',
          404,
          `Version ${versionId} of the provisioning template ${templateName} does not exist.`,
        );
      }
      return versionView(t, v);
    },

    listVersions(templateName, { after, limit }) {
      const t = existing(templateName);
      const page = store.listVersions(templateName, after, limit);
      return { ...page, items: page.items.map((v) => versionView(t, v)) };
    },

    deleteVersion(templateName, versionId) {
      store.transaction(() => {
        const t = existing(templateName);
        if (store.getVersion(templateName, versionId) === undefined) {
          throw new ApiError(
            'ResourceNotFoundException',
            404,
            `Version ${versionId} of the provisioning template ${templateName} does not exist.`,
          );
        }
        // The API reference lists DeleteConflictException for this operation; the default version
        // is what cannot go (UpdateProvisioningTemplate moves the default first).
        if (versionId === t.defaultVersionId) {
          throw new ApiError(
            'DeleteConflictException',
            409,
            `Version ${versionId} is the default version of the provisioning template ${templateName}: set another default first.`,
          );
        }
        store.deleteVersion(templateName, versionId);
      });
    },

    getTemplateForProvisioning(templateName) {
      if (!PROVISIONING_TEMPLATE_LIMITS.templateName.test(templateName)) return undefined;
      const t = store.getTemplate(templateName);
      if (t === undefined) return undefined;
      const v = store.getVersion(templateName, t.defaultVersionId);
      if (v === undefined) return undefined;
      // Checked when it was stored; checked again here so RegisterThing gets the parsed form.
      const checked = checkProvisioningTemplate(v.templateBody, { type: t.type });
      if (!checked.ok) return undefined;
      return {
        templateName: t.templateName,
        templateArn: templateArn(t.templateName),
        enabled: t.enabled,
        type: t.type,
        provisioningRoleArn: t.provisioningRoleArn,
        ...(t.preProvisioningHook === undefined ? {} : { preProvisioningHook: t.preProvisioningHook }),
        defaultVersionId: t.defaultVersionId,
        templateBody: v.templateBody,
        template: checked.template,
      };
    },
  };
}
