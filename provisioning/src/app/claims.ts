import path from 'node:path';
import {
  claimPolicyDocument,
  type IotPolicyDocument,
  type MqttProtocol,
  parseIotPolicyDocument,
  parseJson,
  pifleetClaimTemplateBody,
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
} from '@pifleet/protocol';
import type { readBundle as ReadBundleFn, writeBundleFile as WriteBundleFile } from '../adapters/bundle-files.js';
import type { readClaimBundle as ReadClaimBundleFn } from '../adapters/claim-bundle-files.js';
import { BUNDLE_MODES, certificateIdOf, parseIotArn, renderBundleUnit, splitEndpoint } from '../core/bundle.js';
import {
  CLAIM_BUNDLE_FILES,
  claimPolicyName,
  HOOK_PAYLOAD_VERSION,
  iotArnPrefix,
  localProvisioningRoleArn,
  renderClaimAgentConfig,
} from '../core/claim-bundle.js';
import { type HintCommands, PLAIN_HINTS } from '../core/hints.js';
import { ConflictError, NotFoundError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { DeviceRegistry } from '../ports/registry.js';
import type { ProvisioningTemplates, TemplateDescription } from '../ports/templates.js';
import type { BundleTarget } from './provisioner.js';

/**
 * `claims create`: everything fleet provisioning by claim needs in the account, and the claim
 * bundle to bake into an image. Idempotent for the shared parts (the thing group, the device
 * policy, the template, the claim policy are made when missing and reused otherwise); each run
 * makes one new claim certificate, because its private key exists only in the answer that made it.
 */

export interface ClaimsDeps {
  readonly registry: DeviceRegistry;
  readonly templates: ProvisioningTemplates;
  readonly target: BundleTarget;
  readonly files: {
    readonly readBundle: typeof ReadBundleFn;
    readonly readClaimBundle: typeof ReadClaimBundleFn;
    readonly writeBundleFile: typeof WriteBundleFile;
  };
  readonly log: Logger;
  readonly hints?: HintCommands;
}

export interface ClaimRequest {
  readonly templateName: string;
  readonly thingGroup: string;
  /** Absolute bundle directory (made already: the caller refuses one that cannot be made before anything else). */
  readonly bundleDir: string;
  /** Where the bundle will be on the device; the bundle directory by default. */
  readonly installDir?: string;
  readonly mqttProtocol?: MqttProtocol;
  /** The template's pre-provisioning hook (a Lambda ARN), when the template is created. */
  readonly hookArn?: string;
  /** The role IoT assumes to provision, when the template is created (AWS: required then). */
  readonly roleArn?: string;
  /** Replace a claim bundle already in the bundle directory. */
  readonly force: boolean;
}

export interface ClaimResult {
  readonly templateName: string;
  readonly templateArn: string;
  readonly thingGroup: string;
  readonly devicePolicyName: string;
  readonly claimPolicyName: string;
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly bundleDir: string;
  /** What this run created in the account and wrote, in order. */
  readonly changes: readonly string[];
  /** What it found and reused. */
  readonly reused: readonly string[];
  readonly notes: readonly string[];
}

/** Two policy documents the same, as IoT's grammar reads them (key order and a lone statement aside). */
function samePolicy(a: IotPolicyDocument, b: IotPolicyDocument): boolean {
  const canonical = (d: IotPolicyDocument) => {
    const parsed = parseIotPolicyDocument(JSON.stringify(d));
    return parsed.ok ? JSON.stringify(parsed.value) : undefined;
  };
  const left = canonical(a);
  return left !== undefined && left === canonical(b);
}

/** The template body as IoT keeps it, compared as JSON (whitespace aside); false for one that is not JSON. */
function sameBody(stored: string, wanted: string): boolean {
  const parsed = parseJson(stored);
  return parsed.ok && JSON.stringify(parsed.value) === wanted;
}

export function createClaims(deps: ClaimsDeps) {
  const { registry, templates, files, log } = deps;
  const hints = deps.hints ?? PLAIN_HINTS;

  /** The device data endpoint (DescribeEndpoint iot:Data-ATS), with the local core's MQTT port when it gives none. */
  async function dataEndpoint(): Promise<{ host: string; port: number }> {
    const address = await registry.describeEndpoint('iot:Data-ATS');
    const split = splitEndpoint(address, deps.target.mqtt?.port ?? 8883);
    return address.includes(':') || !deps.target.mqtt ? split : { host: split.host, port: deps.target.mqtt.port };
  }

  /**
   * Refuses a bundle directory that already holds a claim bundle (its key would be lost) unless
   * `force`; with `force`, says which claim certificate the replaced files held.
   */
  async function checkBundleDir(req: ClaimRequest, notes: string[]): Promise<void> {
    const [claim, bundle] = await Promise.all([files.readClaimBundle(req.bundleDir), files.readBundle(req.bundleDir)]);
    const holdsClaim = claim.hasClaimKey || claim.claimCertificatePem !== undefined;
    if (!holdsClaim && bundle.thingName === undefined) return;
    const oldId = claim.claimCertificatePem === undefined ? undefined : certificateIdOf(claim.claimCertificatePem);
    const what = holdsClaim
      ? `a claim bundle${oldId ? ` (claim certificate ${oldId})` : ''}`
      : `the bundle of thing ${bundle.thingName}`;
    if (!req.force) {
      throw new ConflictError('BUNDLE_EXISTS', `${req.bundleDir} already holds ${what}`, {
        hint: 'choose another --out directory, or add --force to replace it (its private key is lost)',
        data: { bundleDir: req.bundleDir },
      });
    }
    notes.push(
      `replaced ${what} in ${req.bundleDir}${
        oldId
          ? `; that certificate stays active until revoked: ${hints.pifleet(`claims revoke --certificate-id ${oldId}`)}`
          : ''
      }`,
    );
  }

  /** The template to provision through: found (reused, with notes where it differs) or created. */
  async function ensureTemplate(
    req: ClaimRequest,
    existing: TemplateDescription | undefined,
    roleArn: string | undefined,
    body: string,
    out: { changes: string[]; reused: string[]; notes: string[] },
  ): Promise<string> {
    if (existing) {
      out.reused.push(`template ${req.templateName}`);
      if (!sameBody(existing.templateBody, body)) {
        out.notes.push(
          `template ${req.templateName} exists with another body and was kept (${hints.pifleet(
            `templates describe ${req.templateName}`,
          )} shows it; delete it to have pifleet create its own)`,
        );
      }
      if (!existing.enabled) {
        out.notes.push(`template ${req.templateName} is disabled: devices cannot provision until it is enabled`);
      }
      if (req.hookArn !== undefined && existing.preProvisioningHook?.targetArn !== req.hookArn) {
        out.notes.push(`--hook-arn was not applied: template ${req.templateName} exists with its own hook settings`);
      }
      return existing.templateArn;
    }
    if (roleArn === undefined) throw new Error('a role ARN is chosen before anything is created');
    const { templateArn } = await templates.createTemplate({
      templateName: req.templateName,
      templateBody: body,
      provisioningRoleArn: roleArn,
      enabled: true,
      description: 'pifleet fleet provisioning by claim (pifleet claims create)',
      ...(req.hookArn !== undefined
        ? { preProvisioningHook: { targetArn: req.hookArn, payloadVersion: HOOK_PAYLOAD_VERSION } }
        : {}),
    });
    log.info({ templateName: req.templateName }, 'template created');
    out.changes.push(`created template ${req.templateName}${req.hookArn ? ' with its pre-provisioning hook' : ''}`);
    return templateArn;
  }

  async function create(req: ClaimRequest): Promise<ClaimResult> {
    const changes: string[] = [];
    const reused: string[] = [];
    const notes: string[] = [];
    const installDir = req.installDir ?? req.bundleDir;
    const body = pifleetClaimTemplateBody({ thingGroup: req.thingGroup, policyName: RECOMMENDED_POLICY_NAME });

    // Refusals that need no ARN first, before anything is created. The claim policy's check needs
    // the account's ARN prefix, so it comes after the shared parts (kept and reused by a re-run)
    // and before the certificate, whose key would otherwise be written for nothing.
    await checkBundleDir(req, notes);
    const existing = await templates.describeTemplate(req.templateName);
    if (existing?.type === 'JITP') {
      throw new ConflictError(
        'TEMPLATE_TYPE',
        `template ${req.templateName} is a just-in-time provisioning template, not a fleet provisioning one`,
        { hint: 'choose another --template name' },
      );
    }
    if (!existing && deps.target.kind === 'aws' && req.roleArn === undefined) {
      throw new UsageError(`creating template ${req.templateName} in AWS needs --role-arn`, {
        hint: 'the role IoT assumes to create things and attach policies: the stack output ProvisioningRoleArn (or PIFLEET_PROVISIONING_ROLE_ARN)',
      });
    }
    const endpoint = await dataEndpoint();

    // The thing group first: its ARN names the partition, region and account the policies need.
    let group = await registry.describeThingGroup(req.thingGroup);
    if (group) reused.push(`thing group ${req.thingGroup}`);
    else {
      group = await registry.createThingGroup(req.thingGroup, {});
      changes.push(`created thing group ${req.thingGroup}`);
    }
    const scope = iotArnPrefix(group.thingGroupArn);
    const arn = parseIotArn(group.thingGroupArn);
    if (!scope || !arn) throw new Error(`cannot read partition, region and account from ${group.thingGroupArn}`);

    if (await registry.getPolicy(RECOMMENDED_POLICY_NAME)) reused.push(`policy ${RECOMMENDED_POLICY_NAME}`);
    else {
      await registry.createPolicy(RECOMMENDED_POLICY_NAME, recommendedDevicePolicy(arn.region, arn.accountId));
      changes.push(`created policy ${RECOMMENDED_POLICY_NAME}`);
    }

    const roleArn =
      req.roleArn ?? (deps.target.kind === 'local' ? localProvisioningRoleArn(scope.accountId) : undefined);
    const templateArn = await ensureTemplate(req, existing, roleArn, body, { changes, reused, notes });

    const policyName = claimPolicyName(req.templateName);
    const wanted = claimPolicyDocument({ arnPrefix: scope.prefix, templateName: req.templateName });
    const current = await registry.getPolicy(policyName);
    if (current === undefined) {
      await registry.createPolicy(policyName, wanted);
      changes.push(`created policy ${policyName}`);
    } else if (samePolicy(current, wanted)) {
      reused.push(`policy ${policyName}`);
    } else {
      // A policy of that name that grants something else must not be given to a certificate
      // baked into every image: say so instead of attaching it.
      throw new ConflictError('CLAIM_POLICY_DIFFERS', `policy ${policyName} exists with another document`, {
        hint: `delete policy ${policyName} (aws iot delete-policy) so that pifleet creates the claim policy, or choose another --template`,
        data: { policyName },
      });
    }

    const cert = await registry.createKeysAndCertificate();
    // The key exists only in this answer: written before anything else can fail.
    if (cert.privateKeyPem === undefined) throw new Error('CreateKeysAndCertificate returned no private key');
    await files.writeBundleFile(
      req.bundleDir,
      CLAIM_BUNDLE_FILES.claimPrivateKey,
      cert.privateKeyPem,
      BUNDLE_MODES.privateKey,
    );
    await files.writeBundleFile(
      req.bundleDir,
      CLAIM_BUNDLE_FILES.claimCertificate,
      cert.certificatePem,
      BUNDLE_MODES.other,
    );
    changes.push(`created claim certificate ${cert.certificateId} (ACTIVE)`);
    log.info({ certificateId: cert.certificateId, templateName: req.templateName }, 'claim certificate issued');
    await registry.attachPolicy(policyName, cert.certificateArn);
    changes.push(`attached policy ${policyName} to it`);

    // The agent writes its own certificate and key and rewrites agent.json in the install
    // directory on first boot, so its outbox lives there too: the unit then makes that directory
    // writable (a config directory apart from the outbox is read-only under the unit).
    const outboxDir = installDir;
    const generated: [string, string][] = [
      [CLAIM_BUNDLE_FILES.ca, deps.target.caPem],
      [
        CLAIM_BUNDLE_FILES.agentConfig,
        renderClaimAgentConfig({
          templateName: req.templateName,
          endpoint: endpoint.host,
          port: endpoint.port,
          mqttProtocol: req.mqttProtocol ?? '5',
          installDir,
          outboxPath: path.posix.join(outboxDir, 'outbox.db'),
        }),
      ],
      [CLAIM_BUNDLE_FILES.unit, renderBundleUnit(installDir, outboxDir)],
    ];
    for (const [name, content] of generated) {
      await files.writeBundleFile(req.bundleDir, name, content, BUNDLE_MODES.other);
    }
    changes.push(`wrote ${Object.values(CLAIM_BUNDLE_FILES).join(', ')}`);
    if (reused.includes(`template ${req.templateName}`)) {
      notes.push(
        `a new claim certificate was made; earlier ones stay active until revoked: ${hints.pifleet('claims revoke --certificate-id ID')}`,
      );
    }
    return {
      templateName: req.templateName,
      templateArn,
      thingGroup: req.thingGroup,
      devicePolicyName: RECOMMENDED_POLICY_NAME,
      claimPolicyName: policyName,
      certificateId: cert.certificateId,
      certificateArn: cert.certificateArn,
      bundleDir: req.bundleDir,
      changes,
      reused,
      notes,
    };
  }

  return { create };
}

/** Sets a claim certificate INACTIVE: no device can provision with it any more (devices provisioned stay). */
export async function revokeClaimCertificate(
  registry: DeviceRegistry,
  certificateId: string,
): Promise<{ certificateId: string; changed: boolean }> {
  const cert = await registry.describeCertificate(certificateId);
  if (!cert) {
    throw new NotFoundError(`certificate ${certificateId} not found`, {
      hint: 'the claim certificate ID is printed by claims create (certificateId in its --json output)',
    });
  }
  if (cert.status === 'INACTIVE') return { certificateId, changed: false };
  await registry.setCertificateStatus(certificateId, 'INACTIVE');
  return { certificateId, changed: true };
}
