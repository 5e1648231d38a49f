import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import { makeOutDirectory } from '../adapters/out-directory.js';
import { collect, type Runner, withCommonOptions } from '../app/command.js';
import { parseAttributes, parseRegistryName, parseThingName } from '../core/args.js';
import { BUNDLE_FILES, BUNDLE_MODES, DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { InputError, UsageError } from '../errors.js';

/** Where bundles went without `--out` before `.pifleet/bundles`. */
const OLD_BUNDLES_DIR = 'bundles';

/**
 * Bundle directory of a thing: `--out`, else `.pifleet/bundles/NAME`, or the old default
 * `./bundles/NAME` when only that one holds the thing's bundle (so a thing made by an older
 * pifleet is still completed, rotated and deleted with its bundle; `note` says so).
 */
export function defaultBundleDir(
  cwd: string,
  thingName: string,
  out?: string,
): { readonly dir: string; readonly note?: string } {
  if (out !== undefined) return { dir: path.resolve(cwd, out) };
  const dir = path.resolve(cwd, DEFAULT_BUNDLES_DIR, thingName);
  const old = path.resolve(cwd, OLD_BUNDLES_DIR, thingName);
  if (!existsSync(dir) && existsSync(path.join(old, BUNDLE_FILES.agentConfig))) {
    return {
      dir: old,
      note: `using the bundle in ${path.join(OLD_BUNDLES_DIR, thingName)} (the default before ${DEFAULT_BUNDLES_DIR}); move it to ${path.join(DEFAULT_BUNDLES_DIR, thingName)}`,
    };
  }
  return { dir };
}

/** `--mqtt-protocol`: `5` or `3.1.1`; undefined when not given (the provisioner's default, 5). */
export function parseMqttProtocol(value: string | undefined): MqttProtocol | undefined {
  if (value === undefined) return undefined;
  const found = MQTT_PROTOCOLS.find((p) => p === value);
  if (found === undefined) {
    throw new UsageError(`--mqtt-protocol must be ${MQTT_PROTOCOLS.join(' or ')}, got ${JSON.stringify(value)}`);
  }
  return found;
}

export function registerThingsCreate(things: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      things
        .command('create')
        .description('create a thing with its certificate, policy and device bundle (idempotent)')
        .argument('<name>', 'thing name')
        .option('--attr <key=value>', 'thing attribute (repeatable)', collect, [])
        .option('--type <thingType>', 'thing type (created when missing; a thing without one holds 3 attributes)')
        .option('--group <thingGroup>', 'thing group the thing joins (created when missing)')
        .option('--csr <file>', 'issue the certificate from this CSR (the private key stays on the device)')
        .option('--out <dir>', `bundle directory (default: ${DEFAULT_BUNDLES_DIR}/NAME)`)
        .option('--install-dir <dir>', 'where the bundle will be on the device (default: the bundle directory)')
        .option('--force', 'overwrite an existing bundle, or issue a new certificate for a stale one')
        .option('--mqtt-protocol <version>', "MQTT version of the bundle's agent: 5 or 3.1.1 (default: 5)")
        .option(
          '--self-update',
          "the bundle's pifleet-agent.service runs the agent for updates (agent-update jobs; the agent installed in /opt/pifleet)",
        ),
    ),
    async (ctx, [rawName], o) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      const attributes = parseAttributes(o.attr);
      const thingTypeName = o.type === undefined ? undefined : parseRegistryName('thing type', o.type);
      const thingGroupName = o.group === undefined ? undefined : parseRegistryName('thing group', o.group);
      let csrPem: string | undefined;
      if (o.csr !== undefined) {
        try {
          csrPem = await readFile(path.resolve(ctx.io.cwd, o.csr), 'utf8');
        } catch (err) {
          throw new InputError(`cannot read CSR ${o.csr}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
        }
        if (!csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
          throw new InputError(`${o.csr} is not a PEM certificate signing request`, {
            hint: 'openssl req -new -key device.key -subj /CN=NAME -out device.csr',
          });
        }
      }
      const { dir: bundleDir, note } = defaultBundleDir(ctx.io.cwd, thingName, o.out);
      const installDir = o.installDir;
      if (installDir !== undefined && !path.posix.isAbsolute(installDir)) {
        throw new InputError(`--install-dir must be an absolute path, got ${installDir}`);
      }
      const mqttProtocol = parseMqttProtocol(o.mqttProtocol);
      // Before anything is created in the account: a bundle directory that cannot be made (under
      // /proc, through a file, without permission) failed only after the certificate was issued,
      // and its private key, which exists only in that response, was lost with it.
      await makeOutDirectory(bundleDir, BUNDLE_MODES.directory);
      const { provisioner } = await ctx.services();
      const r = await provisioner.provisionThing({
        thingName,
        attributes,
        bundleDir,
        force: o.force === true,
        ...(thingTypeName !== undefined ? { thingTypeName } : {}),
        ...(thingGroupName !== undefined ? { thingGroupName } : {}),
        ...(csrPem !== undefined ? { csrPem } : {}),
        ...(installDir !== undefined ? { installDir } : {}),
        ...(mqttProtocol !== undefined ? { mqttProtocol } : {}),
        ...(o.selfUpdate === true ? { selfUpdate: true } : {}),
      });
      const head =
        r.status === 'unchanged'
          ? `thing ${thingName} is already complete; nothing changed`
          : r.status === 'created'
            ? `created thing ${thingName}`
            : `completed thing ${thingName}`;
      const lines = [
        head,
        ...r.changes.map((c) => `  - ${c}`),
        `certificate ${r.certificateId}`,
        `bundle ${r.bundleDir}`,
        ...[...r.notes, ...(note ? [note] : [])].map((n) => `note: ${n}`),
      ];
      return { data: r, text: lines.join('\n') };
    },
  );
}
