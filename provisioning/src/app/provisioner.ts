import path from 'node:path';
import { type MqttProtocol, RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import type {
  readBundle as ReadBundleFn,
  removeBundle as RemoveBundle,
  writeBundleFile as WriteBundleFile,
} from '../adapters/bundle-files.js';
import {
  BUNDLE_FILES,
  BUNDLE_MODES,
  certificateIdFromArn,
  certificateIdOf,
  parseIotArn,
  renderAgentConfig,
  renderBundleUnit,
  splitEndpoint,
} from '../core/bundle.js';
import { thingNotFound } from '../core/error-map.js';
import { type HintCommands, PLAIN_HINTS } from '../core/hints.js';
import { ConflictError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { DeviceRegistry, IssuedCertificate } from '../ports/registry.js';
import type { ShadowClient } from '../ports/shadows.js';

/**
 * The per-thing procedures behind the commands: provision (create or complete), tear down, and
 * rotate. Each is idempotent and re-entrant: it looks at what exists in the registry and in the
 * bundle directory and does only what is missing, so a re-run after a crash finishes the job.
 */

/** Where a bundle's device connects: what every bundle writer needs of the target. */
export interface BundleTarget {
  readonly kind: 'aws' | 'local';
  /** CA the device must trust: Amazon Root CA 1, or the local core's CA. */
  readonly caPem: string;
  /** MQTT listener of the local core (its port is used when DescribeEndpoint gives none). */
  readonly mqtt?: { host: string; port: number };
}

export interface ProvisionerDeps {
  readonly registry: DeviceRegistry;
  readonly shadows: ShadowClient;
  readonly target: BundleTarget;
  readonly files: {
    readonly readBundle: typeof ReadBundleFn;
    readonly writeBundleFile: typeof WriteBundleFile;
    readonly removeBundle: typeof RemoveBundle;
  };
  readonly clock: Clock;
  readonly log: Logger;
  /** Spells the commands hints name (default: the installed `pifleet`). */
  readonly hints?: HintCommands;
}

export interface ProvisionRequest {
  readonly thingName: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** The device's CSR: the certificate is issued from it and no private key is written. */
  readonly csrPem?: string;
  /** Absolute bundle directory. */
  readonly bundleDir: string;
  /** Where the bundle's files will be on the device (the agent config names them); the bundle directory by default. */
  readonly installDir?: string;
  readonly force: boolean;
  /**
   * The MQTT version the bundle's agent speaks: `'5'` by default, for AWS IoT Core and the local
   * IoT Core alike (both serve MQTT 5 and 3.1.1 on one listener); `'3.1.1'` on request.
   */
  readonly mqttProtocol?: MqttProtocol;
  /** The bundle's unit is the one for agent updates (`pifleet-agent print-unit --self-update`). */
  readonly selfUpdate?: boolean;
  /** The thing's type: created when missing, refused when deprecated; an existing thing is given it. */
  readonly thingTypeName?: string;
  /** A thing group the thing joins: created (as a root group) when missing. */
  readonly thingGroupName?: string;
  /** The caller made sure of the type and group already (a fleet run does it once, not per thing). */
  readonly typeAndGroupEnsured?: boolean;
}

export type ProvisionStatus = 'created' | 'completed' | 'unchanged';

export interface ProvisionResult {
  readonly thingName: string;
  readonly status: ProvisionStatus;
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly bundleDir: string;
  /** What this run changed, in order (empty when nothing). */
  readonly changes: readonly string[];
  /** Things the operator should know (a generated file kept because it was edited, …). */
  readonly notes: readonly string[];
}

export interface TeardownResult {
  readonly thingName: string;
  readonly status: 'deleted' | 'absent';
  readonly deletedCertificates: readonly string[];
  readonly changes: readonly string[];
}

export interface RotateResult {
  readonly thingName: string;
  /** `issued`: a new certificate is attached and the bundle rewritten; `retired`: old certificates removed. */
  readonly status: 'issued' | 'retired' | 'pending';
  readonly newCertificateId: string;
  readonly oldCertificateIds: readonly string[];
  readonly bundleDir: string;
  readonly changes: readonly string[];
  readonly evidence?: string;
}

const isCertArn = (arn: string) => /:cert\/[0-9a-fA-F]+$/.test(arn);

export function createProvisioner(deps: ProvisionerDeps) {
  const { registry, files, log } = deps;
  const hints = deps.hints ?? PLAIN_HINTS;
  let endpointPromise: Promise<{ host: string; port: number }> | undefined;
  let policyPromise: Promise<boolean> | undefined;

  /** The device data endpoint (DescribeEndpoint iot:Data-ATS), asked once per run. */
  const dataEndpoint = () => {
    endpointPromise ??= registry.describeEndpoint('iot:Data-ATS').then((address) => {
      const split = splitEndpoint(address, deps.target.mqtt?.port ?? 8883);
      return address.includes(':') || !deps.target.mqtt ? split : { host: split.host, port: deps.target.mqtt.port };
    });
    endpointPromise.catch(() => {
      endpointPromise = undefined;
    });
    return endpointPromise;
  };

  /** Creates the recommended policy once per run if missing; resolves true when it created it. */
  const ensurePolicy = (certificateArn: string) => {
    policyPromise ??= (async () => {
      if (await registry.getPolicy(RECOMMENDED_POLICY_NAME)) return false;
      const arn = parseIotArn(certificateArn);
      if (!arn) throw new Error(`cannot read region and account from ${certificateArn}`);
      await registry.createPolicy(RECOMMENDED_POLICY_NAME, recommendedDevicePolicy(arn.region, arn.accountId));
      log.info({ policyName: RECOMMENDED_POLICY_NAME }, 'policy created');
      return true;
    })();
    policyPromise.catch(() => {
      policyPromise = undefined;
    });
    return policyPromise;
  };

  /** Writes the generated bundle files that are missing; keeps ones that differ unless `overwrite`. */
  async function writeGeneratedFiles(
    req: { thingName: string; bundleDir: string; installDir: string; mqttProtocol: MqttProtocol; selfUpdate?: boolean },
    bundle: Awaited<ReturnType<typeof ReadBundleFn>>,
    overwrite: boolean,
    changes: string[],
    notes: string[],
  ) {
    const endpoint = await dataEndpoint();
    // A bundle used where it was written (no --install-dir: the demo, an agent run by hand) keeps
    // its outbox beside it, where its user can write. An installed one (--install-dir /etc/pifleet)
    // uses the agent's default, /var/lib/pifleet/outbox.db, as the README's install steps create
    // it: the unit may then write only there and keep the config directory read-only.
    const outboxDir = req.installDir === req.bundleDir ? req.installDir : undefined;
    const wanted: [string, string | undefined, string][] = [
      [BUNDLE_FILES.ca, bundle.caPem, deps.target.caPem],
      [
        BUNDLE_FILES.agentConfig,
        bundle.agentConfigText,
        renderAgentConfig({
          thingName: req.thingName,
          endpoint: endpoint.host,
          port: endpoint.port,
          mqttProtocol: req.mqttProtocol,
          installDir: req.installDir,
          ...(outboxDir !== undefined ? { outboxPath: path.posix.join(outboxDir, 'outbox.db') } : {}),
        }),
      ],
      [BUNDLE_FILES.unit, bundle.unitText, renderBundleUnit(req.installDir, outboxDir, req.selfUpdate === true)],
    ];
    for (const [name, current, content] of wanted) {
      if (current === content) continue;
      if (current !== undefined && !overwrite) {
        notes.push(`${name} differs from the generated one and was kept (--force rewrites it)`);
        continue;
      }
      await files.writeBundleFile(req.bundleDir, name, content, BUNDLE_MODES.other);
      changes.push(current === undefined ? `wrote ${name}` : `rewrote ${name}`);
    }
  }

  async function issueCertificate(csrPem: string | undefined, bundleDir: string): Promise<IssuedCertificate> {
    const cert = csrPem ? await registry.createCertificateFromCsr(csrPem) : await registry.createKeysAndCertificate();
    // The key exists only in this response: write it before anything else can fail.
    if (cert.privateKeyPem !== undefined) {
      await files.writeBundleFile(bundleDir, BUNDLE_FILES.privateKey, cert.privateKeyPem, BUNDLE_MODES.privateKey);
    }
    await files.writeBundleFile(bundleDir, BUNDLE_FILES.certificate, cert.certificatePem, BUNDLE_MODES.other);
    log.info({ thingName: path.basename(bundleDir), certificateId: cert.certificateId }, 'certificate issued');
    return cert;
  }

  async function ensureAttachments(certificateArn: string, fresh: boolean, changes: string[]) {
    if (await ensurePolicy(certificateArn)) changes.push(`created policy ${RECOMMENDED_POLICY_NAME}`);
    const policies = fresh ? [] : await registry.listAttachedPolicies(certificateArn);
    if (!policies.includes(RECOMMENDED_POLICY_NAME)) {
      await registry.attachPolicy(RECOMMENDED_POLICY_NAME, certificateArn);
      changes.push(`attached policy ${RECOMMENDED_POLICY_NAME}`);
    }
  }

  /**
   * The thing type and group a thing is to have, created when missing (`things create --type T
   * --group G` on a fresh account just works; the changes list says what was created, so a typo is
   * seen). A deprecated type is refused: AWS takes no new things of it.
   */
  async function ensureTypeAndGroup(
    req: Pick<ProvisionRequest, 'thingTypeName' | 'thingGroupName'>,
    changes: string[],
  ): Promise<void> {
    if (req.thingTypeName !== undefined) {
      const type = await registry.describeThingType(req.thingTypeName);
      if (type?.deprecated) {
        throw new ConflictError('THING_TYPE_DEPRECATED', `thing type ${req.thingTypeName} is deprecated`, {
          hint: 'choose another --type (AWS IoT takes no new things of a deprecated type)',
          data: { thingTypeName: req.thingTypeName },
        });
      }
      if (!type) {
        await registry.createThingType(req.thingTypeName);
        changes.push(`created thing type ${req.thingTypeName}`);
      }
    }
    if (req.thingGroupName !== undefined && !(await registry.describeThingGroup(req.thingGroupName))) {
      await registry.createThingGroup(req.thingGroupName, {});
      changes.push(`created thing group ${req.thingGroupName}`);
    }
  }

  /** Creates a thing with its certificate, policy, attachments and bundle, or completes a partly created one. */
  async function provisionThing(req: ProvisionRequest): Promise<ProvisionResult> {
    const changes: string[] = [];
    const notes: string[] = [];
    const installDir = req.installDir ?? req.bundleDir;
    const { thingName, bundleDir } = req;

    const bundle = await files.readBundle(bundleDir);
    if (bundle.nonEmpty && bundle.thingName !== undefined && bundle.thingName !== thingName && !req.force) {
      throw new ConflictError('BUNDLE_EXISTS', `${bundleDir} holds the bundle of thing ${bundle.thingName}`, {
        hint: 'choose another --out, or pass --force to overwrite it',
      });
    }
    const bundleIsOurs = bundle.thingName === undefined || bundle.thingName === thingName;

    // 1. The thing, of its type, in its group.
    if (req.typeAndGroupEnsured !== true) await ensureTypeAndGroup(req, changes);
    const existing = await registry.describeThing(thingName);
    if (!existing) {
      await registry.createThing(thingName, req.attributes, req.thingTypeName);
      changes.push(req.thingTypeName === undefined ? 'created thing' : `created thing of type ${req.thingTypeName}`);
    } else {
      // The type first: a thing without one holds 3 attributes, with one 50.
      if (req.thingTypeName !== undefined && existing.thingTypeName !== req.thingTypeName) {
        await registry.setThingType(thingName, req.thingTypeName);
        changes.push(`set thing type ${req.thingTypeName}`);
      }
      const differing = Object.entries(req.attributes).filter(([k, v]) => existing.attributes[k] !== v);
      if (differing.length > 0) {
        await registry.updateThingAttributes(thingName, Object.fromEntries(differing));
        changes.push(`updated attributes ${differing.map(([k]) => k).join(', ')}`);
      }
    }
    if (req.thingGroupName !== undefined) {
      const groups = existing ? await registry.listThingGroupsForThing(thingName) : [];
      if (!groups.includes(req.thingGroupName)) {
        await registry.addThingToThingGroup(req.thingGroupName, thingName);
        changes.push(`added to thing group ${req.thingGroupName}`);
      }
    }
    const principals = existing ? (await registry.listThingPrincipals(thingName)).filter(isCertArn) : [];

    // 2. The certificate: the bundle's, if the registry knows it; else a new one.
    let cert: { certificateId: string; certificateArn: string } | undefined;
    let fresh = false;
    const bundleCertId = bundle.certificatePem && bundleIsOurs ? certificateIdOf(bundle.certificatePem) : undefined;
    if (bundleCertId) {
      const known = await registry.describeCertificate(bundleCertId);
      if (known && known.status === 'ACTIVE') {
        cert = known;
      } else if (!req.force) {
        throw new ConflictError(
          'BUNDLE_STALE',
          known
            ? `the certificate in ${bundleDir} (${bundleCertId.slice(0, 12)}…) is ${known.status}`
            : `the certificate in ${bundleDir} (${bundleCertId.slice(0, 12)}…) is not in the registry`,
          {
            hint: `pass --force to issue a new certificate and overwrite the bundle, or ${hints.pifleet(`certs rotate ${thingName}`)}`,
          },
        );
      }
    } else if (bundle.nonEmpty && !req.force && bundle.thingName === undefined) {
      throw new ConflictError('BUNDLE_EXISTS', `${bundleDir} exists and is not a bundle of ${thingName}`, {
        hint: 'choose another --out, or pass --force to overwrite it',
      });
    }
    if (!cert && principals.length > 0 && !req.force) {
      const id = certificateIdFromArn(principals[0] as string) ?? principals[0];
      throw new ConflictError(
        'CERTIFICATE_ELSEWHERE',
        `thing ${thingName} already has certificate ${String(id).slice(0, 12)}… but ${bundleDir} has no bundle for it`,
        {
          hint: `pass the bundle's directory with --out, or ${hints.pifleet(`certs rotate ${thingName}`)} to issue a new one`,
        },
      );
    }
    if (!cert) {
      cert = await issueCertificate(req.csrPem, bundleDir);
      fresh = true;
      changes.push('issued certificate');
    }

    // 3. Policy and attachments.
    await ensureAttachments(cert.certificateArn, fresh, changes);
    if (!principals.includes(cert.certificateArn)) {
      await registry.attachThingPrincipal(thingName, cert.certificateArn);
      changes.push('attached certificate to thing');
    }

    // 4. The rest of the bundle.
    await writeGeneratedFiles(
      { thingName, bundleDir, installDir, mqttProtocol: req.mqttProtocol ?? '5', selfUpdate: req.selfUpdate === true },
      fresh ? await files.readBundle(bundleDir) : bundle,
      req.force,
      changes,
      notes,
    );
    if (!fresh && !bundle.hasPrivateKey && !req.csrPem) {
      notes.push(`${BUNDLE_FILES.privateKey} is not in the bundle (a CSR certificate: the key stays on the device)`);
    }

    const status: ProvisionStatus = !existing ? 'created' : changes.length === 0 ? 'unchanged' : 'completed';
    return {
      thingName,
      status,
      certificateId: cert.certificateId,
      certificateArn: cert.certificateArn,
      bundleDir,
      changes,
      notes,
    };
  }

  /** Detaches, deactivates and deletes one certificate; tolerant of every step already done. */
  async function retireCertificate(thingName: string, certificateId: string, changes: string[]): Promise<boolean> {
    const known = await registry.describeCertificate(certificateId);
    if (!known) return false;
    for (const policy of await registry.listAttachedPolicies(known.certificateArn)) {
      await registry.detachPolicy(policy, known.certificateArn);
      changes.push(`detached policy ${policy} from ${certificateId.slice(0, 12)}…`);
    }
    if (await registry.detachThingPrincipal(thingName, known.certificateArn)) {
      changes.push(`detached certificate ${certificateId.slice(0, 12)}… from thing`);
    }
    if (known.status === 'ACTIVE') {
      await registry.setCertificateStatus(certificateId, 'INACTIVE');
      changes.push(`deactivated certificate ${certificateId.slice(0, 12)}…`);
    }
    if (await registry.deleteCertificate(certificateId)) {
      changes.push(`deleted certificate ${certificateId.slice(0, 12)}…`);
      return true;
    }
    return false;
  }

  /**
   * The full teardown in the order IoT requires: for each certificate, detach its policies and the
   * thing, set it INACTIVE and delete it; then delete the thing. The bundle's certificate is
   * retired too when the thing no longer lists it (a teardown interrupted after the detach).
   */
  async function teardownThing(req: {
    thingName: string;
    bundleDir?: string;
    removeBundle?: boolean;
  }): Promise<TeardownResult> {
    const { thingName } = req;
    const changes: string[] = [];
    const principals = (await registry.listThingPrincipals(thingName)).filter(isCertArn);
    const ids = new Set(
      principals.map((arn) => certificateIdFromArn(arn)).filter((id): id is string => id !== undefined),
    );
    if (req.bundleDir) {
      const bundle = await files.readBundle(req.bundleDir);
      const id =
        bundle.thingName === thingName && bundle.certificatePem ? certificateIdOf(bundle.certificatePem) : undefined;
      if (id) ids.add(id);
    }
    const deleted: string[] = [];
    for (const id of ids) if (await retireCertificate(thingName, id, changes)) deleted.push(id);
    // DeleteThing succeeds for a thing that does not exist (AWS semantics): ask first to report honestly.
    const existed = (await registry.describeThing(thingName)) !== undefined && (await registry.deleteThing(thingName));
    if (existed) changes.push('deleted thing');
    if (req.removeBundle && req.bundleDir && (await files.removeBundle(req.bundleDir))) changes.push('removed bundle');
    return {
      thingName,
      status: existed || deleted.length > 0 ? 'deleted' : 'absent',
      deletedCertificates: deleted,
      changes,
    };
  }

  /**
   * Evidence that the device runs with the bundle's new certificate. IoT's control plane does not
   * say which certificate a connection used, so this reads the device's shadow: the agent reports
   * `reported.agent.startedAt` on every start, and a device picks up a new bundle only by
   * restarting. An agent start after the new certificate was created is taken as the switch.
   */
  async function rotationEvidence(thingName: string, createdAt: Date | undefined): Promise<string | undefined> {
    if (!createdAt) return undefined;
    let doc: Awaited<ReturnType<ShadowClient['get']>>;
    try {
      doc = await deps.shadows.get(thingName);
    } catch (err) {
      log.warn({ err, thingName }, 'shadow not readable for rotation check');
      return undefined;
    }
    const state = doc?.state as { reported?: { agent?: { startedAt?: unknown } } } | undefined;
    const startedAt = state?.reported?.agent?.startedAt;
    if (typeof startedAt === 'number' && startedAt >= createdAt.getTime()) {
      return `agent started at ${new Date(startedAt).toISOString()}, after the new certificate (${createdAt.toISOString()})`;
    }
    return undefined;
  }

  /**
   * Certificate rotation in two steps. First run: issue a new certificate, attach policy and thing,
   * rewrite the bundle (the old certificate stays active so the device keeps working). Later run:
   * once the device has restarted with the new bundle (see {@link rotationEvidence}), or with
   * `force`, retire the old certificates. `force` on the first run does both at once.
   */
  async function rotateCertificate(req: {
    thingName: string;
    bundleDir: string;
    installDir?: string;
    force: boolean;
  }): Promise<RotateResult> {
    const { thingName, bundleDir } = req;
    const changes: string[] = [];
    const thing = await registry.describeThing(thingName);
    if (!thing) throw thingNotFound(thingName, hints);
    const attached = (await registry.listThingPrincipals(thingName)).filter(isCertArn);
    const attachedIds = attached.map((a) => certificateIdFromArn(a) as string);
    const bundle = await files.readBundle(bundleDir);
    if (bundle.thingName !== undefined && bundle.thingName !== thingName) {
      throw new ConflictError('BUNDLE_EXISTS', `${bundleDir} holds the bundle of thing ${bundle.thingName}`, {
        hint: 'pass the bundle directory of this thing with --out',
      });
    }
    const bundleCertId = bundle.certificatePem ? certificateIdOf(bundle.certificatePem) : undefined;
    const pending = bundleCertId !== undefined && attachedIds.includes(bundleCertId) && attachedIds.length > 1;

    let newId: string;
    let newCreatedAt: Date | undefined;
    if (pending) {
      newId = bundleCertId;
      newCreatedAt = (await registry.describeCertificate(newId))?.creationDate;
    } else {
      const cert = await issueCertificate(undefined, bundleDir);
      newId = cert.certificateId;
      newCreatedAt = (await registry.describeCertificate(newId))?.creationDate ?? new Date(deps.clock.now());
      changes.push('issued certificate');
      await ensureAttachments(cert.certificateArn, true, changes);
      await registry.attachThingPrincipal(thingName, cert.certificateArn);
      changes.push('attached certificate to thing');
      await writeGeneratedFiles(
        // Not overwritten: a bundle made for 3.1.1 keeps its agent.json (only missing files are written).
        { thingName, bundleDir, installDir: req.installDir ?? bundleDir, mqttProtocol: '5' },
        await files.readBundle(bundleDir),
        false,
        changes,
        [],
      );
    }
    const oldIds = attachedIds.filter((id) => id !== newId);
    if (oldIds.length === 0) {
      return { thingName, status: 'retired', newCertificateId: newId, oldCertificateIds: [], bundleDir, changes };
    }
    const evidence = req.force
      ? 'forced (--force)'
      : pending
        ? await rotationEvidence(thingName, newCreatedAt)
        : undefined;
    if (!evidence) {
      return {
        thingName,
        status: pending ? 'pending' : 'issued',
        newCertificateId: newId,
        oldCertificateIds: oldIds,
        bundleDir,
        changes,
      };
    }
    for (const id of oldIds) await retireCertificate(thingName, id, changes);
    return {
      thingName,
      status: 'retired',
      newCertificateId: newId,
      oldCertificateIds: oldIds,
      bundleDir,
      changes,
      evidence,
    };
  }

  return { provisionThing, teardownThing, rotateCertificate, dataEndpoint, ensureTypeAndGroup };
}

export type Provisioner = ReturnType<typeof createProvisioner>;
