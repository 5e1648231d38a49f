import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { InputError } from '../errors.js';
import { defaultBundleDir } from './things-create.js';

export function registerCertsRotate(certs: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      certs
        .command('rotate')
        .description(
          'issue a new certificate and bundle; the old one is retired on a later run once the device restarted with the new one (or with --force)',
        )
        .argument('<name>', 'thing name')
        .option(
          '--out <dir>',
          `bundle directory (default: ${DEFAULT_BUNDLES_DIR}/NAME); rewritten with the new certificate`,
        )
        .option('--install-dir <dir>', 'where the bundle will be on the device (default: the bundle directory)')
        .option('--force', 'retire the old certificate now, without waiting for the device'),
    ),
    async (ctx, [rawName], o) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      const installDir = o.installDir;
      if (installDir !== undefined && !path.posix.isAbsolute(installDir)) {
        throw new InputError(`--install-dir must be an absolute path, got ${installDir}`);
      }
      const { provisioner } = await ctx.services();
      const { dir: bundleDir, note } = defaultBundleDir(ctx.io.cwd, thingName, o.out);
      const r = await provisioner.rotateCertificate({
        thingName,
        bundleDir,
        force: o.force === true,
        ...(installDir ? { installDir } : {}),
      });
      const next = `install ${r.bundleDir} on the device, restart pifleet-agent, then run: ${ctx.hints.pifleet(`certs rotate ${thingName}`)} (or add --force)`;
      const head =
        r.status === 'retired'
          ? `rotated ${thingName} to certificate ${r.newCertificateId}${r.oldCertificateIds.length > 0 ? `; retired ${r.oldCertificateIds.join(', ')}` : ''}`
          : r.status === 'issued'
            ? `issued certificate ${r.newCertificateId} for ${thingName}; the old one stays active until the device uses the new one`
            : `rotation of ${thingName} pending: no sign yet that the device restarted with certificate ${r.newCertificateId}`;
      const lines = [head, ...r.changes.map((c) => `  - ${c}`), ...(r.evidence ? [`evidence: ${r.evidence}`] : [])];
      if (note) lines.push(`note: ${note}`);
      if (r.status !== 'retired') lines.push(`next: ${next}`);
      return { data: r, text: lines.join('\n') };
    },
  );
}
