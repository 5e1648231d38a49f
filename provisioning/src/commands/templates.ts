import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type RunContext, type Runner, withCommonOptions } from '../app/command.js';
import { parsePositiveInt } from '../core/args.js';
import { parseTemplateName } from '../core/claim-bundle.js';
import { NotFoundError } from '../errors.js';
import type { ProvisioningTemplates, TemplateSummary } from '../ports/templates.js';

/**
 * `templates …`: the account's fleet provisioning templates (AWS IoT's, or the local core's):
 * list, describe (settings and body), delete. `claims create` makes pifleet's own.
 */

/** The run's template client (closed with the run's other services). */
export async function withTemplates<T>(ctx: RunContext, work: (templates: ProvisioningTemplates) => Promise<T>) {
  const { templates } = await ctx.services();
  return work(templates);
}

export function templateNotFound(ctx: RunContext, templateName: string): NotFoundError {
  return new NotFoundError(`provisioning template ${templateName} not found`, {
    hint: ctx.hints.pifleet('templates list'),
  });
}

function summaryData(t: TemplateSummary) {
  return {
    templateName: t.templateName,
    templateArn: t.templateArn,
    enabled: t.enabled,
    ...(t.type !== undefined ? { type: t.type } : {}),
    ...(t.description !== undefined ? { description: t.description } : {}),
    ...(t.creationDate ? { creationDate: t.creationDate.toISOString() } : {}),
    ...(t.lastModifiedDate ? { lastModifiedDate: t.lastModifiedDate.toISOString() } : {}),
  };
}

/** The body as the operator reads it: indented when it is JSON, as stored when not. */
function prettyBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

export function registerTemplatesCommands(templates: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      templates
        .command('list')
        .description('list the fleet provisioning templates (every page)')
        .option('--page-size <n>', 'templates per request (1-250)', '100'),
    ),
    async (ctx, _args, o) => {
      const pageSize = parsePositiveInt('--page-size', o.pageSize, 250);
      const all = await withTemplates(ctx, async (client) => {
        const out: TemplateSummary[] = [];
        let nextToken: string | undefined;
        do {
          const page = await client.listTemplates({ maxResults: pageSize, ...(nextToken ? { nextToken } : {}) });
          out.push(...page.templates);
          nextToken = page.nextToken;
        } while (nextToken);
        return out;
      });
      const lines = all.map(
        (t) =>
          `${t.templateName}  ${t.enabled ? 'enabled' : 'disabled'}${t.type ? `  ${t.type}` : ''}${
            t.description ? `  ${t.description}` : ''
          }`,
      );
      lines.push(`${all.length} template${all.length === 1 ? '' : 's'}`);
      return { data: { templates: all.map(summaryData) }, text: lines.join('\n') };
    },
  );

  run(
    withCommonOptions(
      templates
        .command('describe')
        .description("show a template's settings (enabled, role, hook, default version) and its body")
        .argument('<name>', 'template name'),
    ),
    async (ctx, [rawName]) => {
      const templateName = parseTemplateName(rawName);
      const t = await withTemplates(ctx, (client) => client.describeTemplate(templateName));
      if (!t) throw templateNotFound(ctx, templateName);
      const data = {
        ...summaryData(t),
        ...(t.defaultVersionId !== undefined ? { defaultVersionId: t.defaultVersionId } : {}),
        ...(t.provisioningRoleArn !== undefined ? { provisioningRoleArn: t.provisioningRoleArn } : {}),
        ...(t.preProvisioningHook !== undefined ? { preProvisioningHook: t.preProvisioningHook } : {}),
        templateBody: t.templateBody,
      };
      const hook = t.preProvisioningHook;
      const lines = [
        `template ${t.templateName}  ${t.templateArn}`,
        `enabled: ${t.enabled ? 'yes' : 'no'}`,
        `type: ${t.type ?? '(not given)'}`,
        ...(t.description ? [`description: ${t.description}`] : []),
        `role: ${t.provisioningRoleArn ?? '(none)'}`,
        `pre-provisioning hook: ${hook ? `${hook.targetArn}${hook.payloadVersion ? ` (payload ${hook.payloadVersion})` : ''}` : '(none)'}`,
        `default version: ${t.defaultVersionId ?? '(not given)'}`,
        ...(t.creationDate ? [`created: ${t.creationDate.toISOString()}`] : []),
        'body:',
        prettyBody(t.templateBody),
      ];
      return { data, text: lines.join('\n') };
    },
  );

  run(
    withCommonOptions(
      templates
        .command('delete')
        .description('delete a template and its versions (things and certificates it made stay)')
        .argument('<name>', 'template name'),
    ),
    async (ctx, [rawName]) => {
      const templateName = parseTemplateName(rawName);
      const deleted = await withTemplates(ctx, (client) => client.deleteTemplate(templateName));
      if (!deleted) throw templateNotFound(ctx, templateName);
      return { data: { templateName, deleted: true }, text: `deleted template ${templateName}` };
    },
  );
}
