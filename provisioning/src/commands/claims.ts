import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { DEFAULT_CLAIM_TEMPLATE_NAME, DEFAULT_CLAIMED_THING_GROUP } from '@pifleet/protocol';
import { readBundle, writeBundleFile } from '../adapters/bundle-files.js';
import { readClaimBundle } from '../adapters/claim-bundle-files.js';
import { makeOutDirectory } from '../adapters/out-directory.js';
import { createClaims, revokeClaimCertificate } from '../app/claims.js';
import { type Runner, withCommonOptions } from '../app/command.js';
import { AMAZON_ROOT_CA_1_PEM } from '../core/amazon-root-ca.js';
import { parseRegistryName } from '../core/args.js';
import { BUNDLE_MODES } from '../core/bundle.js';
import { DEFAULT_CLAIMS_DIR, parseHookArn, parseProvisioningRoleArn, parseTemplateName } from '../core/claim-bundle.js';
import { InputError, UsageError } from '../errors.js';
import { withTemplates } from './templates.js';
import { parseMqttProtocol } from './things-create.js';

/**
 * `claims …`: fleet provisioning by claim. `claims create` makes what the account needs (the
 * device policy, the thing group, the template, the claim policy) when missing and a new claim
 * certificate, and writes the claim bundle to bake into an image; `claims revoke` deactivates a
 * claim certificate (images holding it can no longer provision; devices provisioned stay).
 */

/** Environment fallback of `--role-arn` (as PIFLEET_PRESIGN_ROLE_ARN is of `jobs create --presign-role-arn`). */
export const PROVISIONING_ROLE_ENV = 'PIFLEET_PROVISIONING_ROLE_ARN';

const CERTIFICATE_ID = /^[0-9a-f]{64}$/;

export function registerClaimsCommands(claims: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      claims
        .command('create')
        .description(
          'make a claim certificate and the claim bundle to bake into an image (the device policy, thing group, template and claim policy are created when missing)',
        )
        .option('--template <name>', 'provisioning template to register through', DEFAULT_CLAIM_TEMPLATE_NAME)
        .option('--thing-group <group>', 'thing group claimed devices join', DEFAULT_CLAIMED_THING_GROUP)
        .option('--out <dir>', `claim bundle directory (default: ${DEFAULT_CLAIMS_DIR}/TEMPLATE)`)
        .option('--install-dir <dir>', 'where the bundle will be on the device (default: the bundle directory)')
        .option('--hook-arn <arn>', 'pre-provisioning hook (Lambda ARN) of a template this run creates')
        .option(
          '--role-arn <arn>',
          `role IoT assumes to provision, for a template this run creates in AWS (env ${PROVISIONING_ROLE_ENV})`,
        )
        .option('--mqtt-protocol <version>', "MQTT version of the bundle's agent: 5 or 3.1.1 (default: 5)")
        .option('--force', 'replace a claim bundle already in the --out directory'),
    ),
    async (ctx, _args, o) => {
      const templateName = parseTemplateName(o.template);
      const thingGroup = parseRegistryName('thing group', o.thingGroup);
      const hookArn = o.hookArn === undefined ? undefined : parseHookArn(o.hookArn);
      const rawRole = o.roleArn ?? ctx.io.env[PROVISIONING_ROLE_ENV];
      const roleArn = rawRole === undefined || rawRole === '' ? undefined : parseProvisioningRoleArn(rawRole);
      const installDir = o.installDir;
      if (installDir !== undefined && !path.posix.isAbsolute(installDir)) {
        throw new InputError(`--install-dir must be an absolute path, got ${installDir}`);
      }
      const mqttProtocol = parseMqttProtocol(o.mqttProtocol);
      const bundleDir = path.resolve(ctx.io.cwd, o.out ?? path.join(DEFAULT_CLAIMS_DIR, templateName));
      // Before anything is created in the account: the claim key exists only in the answer that
      // makes the certificate, and a directory that cannot be made would lose it.
      await makeOutDirectory(bundleDir, BUNDLE_MODES.directory);
      const services = await ctx.services();
      const r = await withTemplates(ctx, (templates) =>
        createClaims({
          registry: services.registry,
          templates,
          target: {
            kind: services.target.kind,
            caPem: services.target.kind === 'local' ? services.target.caPem : AMAZON_ROOT_CA_1_PEM,
            ...(services.target.kind === 'local' && services.target.mqtt ? { mqtt: services.target.mqtt } : {}),
          },
          files: { readBundle, readClaimBundle, writeBundleFile },
          log: ctx.log,
          hints: ctx.hints,
        }).create({
          templateName,
          thingGroup,
          bundleDir,
          force: o.force === true,
          ...(installDir !== undefined ? { installDir } : {}),
          ...(mqttProtocol !== undefined ? { mqttProtocol } : {}),
          ...(hookArn !== undefined ? { hookArn } : {}),
          ...(roleArn !== undefined ? { roleArn } : {}),
        }),
      );
      const lines = [
        `claim certificate ${r.certificateId} for template ${r.templateName}`,
        ...r.changes.map((c) => `  - ${c}`),
        ...(r.reused.length > 0 ? [`reused: ${r.reused.join(', ')}`] : []),
        `bundle ${r.bundleDir}`,
        ...r.notes.map((n) => `note: ${n}`),
      ];
      return { data: r, text: lines.join('\n') };
    },
  );

  run(
    withCommonOptions(
      claims
        .command('revoke')
        .description(
          'deactivate a claim certificate: images holding it can no longer provision (devices provisioned stay)',
        )
        .requiredOption('--certificate-id <id>', 'the claim certificate (64 hex digits, printed by claims create)'),
    ),
    async (ctx, _args, o) => {
      const certificateId = o.certificateId.toLowerCase();
      if (!CERTIFICATE_ID.test(certificateId)) {
        throw new UsageError(`--certificate-id ${JSON.stringify(o.certificateId)} is not a certificate ID`, {
          hint: 'a certificate ID is 64 hex digits (claims create prints it)',
        });
      }
      const { registry } = await ctx.services();
      const r = await revokeClaimCertificate(registry, certificateId);
      return {
        data: { ...r, status: 'INACTIVE' },
        text: r.changed
          ? `claim certificate ${certificateId} is now INACTIVE`
          : `claim certificate ${certificateId} was already INACTIVE`,
      };
    },
  );
}
