import path from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { SILENT_AFTER_MINUTES, silentAfterMs } from '@pifleet/protocol';
import { readTextIfExists } from '../adapters/text-files.js';
import { type RunContext, type Runner, withCommonOptions } from '../app/command.js';
import { parseNonNegativeInt } from '../core/args.js';
import { CredentialsError, InputError, TargetConfigError, UnavailableError, UsageError } from '../errors.js';

/**
 * `pifleet console`: the web console for the target. The local IoT Core serves its own console
 * (the command prints its URL); for AWS, this process serves the same console on 127.0.0.1 with
 * the operator's credentials (the SDK's chain, `--profile`, `--region`): things and shadows from
 * the IoT control and data planes, commands and history through the stack's command/query API
 * (`--api-url`, SigV4), the live feed over MQTT over WebSocket with SigV4. It runs until Ctrl-C.
 */

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** AWS's answers to credentials it does not accept, or a caller not allowed the call (exit 77). */
const REFUSED_CREDENTIALS = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'AccessDeniedException',
  'UnauthorizedException',
  'ForbiddenException',
]);

function parseSilentAfter(raw: string): number {
  const ms = silentAfterMs(raw.trim() === '' ? Number.NaN : Number(raw));
  if (ms === undefined) {
    throw new InputError(
      `--silent-after must be a number of minutes between 0 and ${SILENT_AFTER_MINUTES.max}, not ${JSON.stringify(raw)}`,
    );
  }
  return ms;
}

function checkUrl(option: string, raw: string, protocols: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${option} is not a URL: ${JSON.stringify(raw)}`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new UsageError(`${option} must be a ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL`);
  }
  return raw;
}

/** Resolves when the run is aborted (Ctrl-C in the bin, the test's controller in-process). */
function untilAborted(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => {});
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export function registerConsole(program: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      program
        .command('console')
        .description('serve the web console for the target on this machine (AWS: until Ctrl-C)')
        .option('--api-url <url>', "AWS: the stack's command/query API URL (its ApiUrl output)")
        .option('--ws-url <url>', "AWS: MQTT over WebSocket URL (default wss://<account's iot:Data-ATS endpoint>/mqtt)")
        .option(
          '--ca-file <file>',
          'AWS: CA certificate (PEM) to trust for the WebSocket endpoint instead of the system CAs',
        )
        .option('--host <host>', 'listen on this loopback address', '127.0.0.1')
        .option('--port <port>', 'listen on this port (0: any free one)', '8890')
        .option(
          '--silent-after <minutes>',
          'flag a thing silent when nothing was heard of it for this long',
          String(SILENT_AFTER_MINUTES.default),
        ),
    ),
    async (ctx: RunContext, _args, options) => {
      const { target } = await ctx.services();
      if (target.kind === 'local') {
        if (target.consoleUrl === undefined) {
          throw new TargetConfigError(`the local IoT Core at ${target.dataDir} has not recorded its console URL`, {
            hint: 'start (or restart) the core: it records the URL in its endpoint file',
          });
        }
        return {
          data: { url: target.consoleUrl, target: 'local' },
          text: `The local IoT Core serves its console: ${target.consoleUrl}`,
        };
      }
      if (options.apiUrl === undefined) {
        throw new UsageError('pifleet console against AWS needs --api-url', {
          hint: 'the stack\'s ApiUrl output: aws cloudformation describe-stacks --stack-name Pifleet --query "Stacks[0].Outputs"',
        });
      }
      if (!LOOPBACK.has(options.host)) {
        throw new UsageError(`--host must be a loopback address (127.0.0.1, ::1, localhost), not ${options.host}`, {
          hint: 'the console acts with your AWS credentials: it must not be reachable from other machines',
        });
      }
      const apiUrl = checkUrl('--api-url', options.apiUrl, ['https:', 'http:']);
      const wsUrl = options.wsUrl === undefined ? undefined : checkUrl('--ws-url', options.wsUrl, ['wss:', 'ws:']);
      const port = parseNonNegativeInt('--port', options.port);
      const silentAfterMs = parseSilentAfter(options.silentAfter);
      let caPem: string | undefined;
      if (options.caFile !== undefined) {
        const file = path.resolve(ctx.io.cwd, options.caFile);
        caPem = await readTextIfExists(file);
        if (caPem === undefined) throw new InputError(`--ca-file ${file} does not exist`);
      }

      // The SDK's own chain (env, profile, SSO, instance role), refreshed as it expires.
      const probe = new IoTClient({
        ...(target.region ? { region: target.region } : {}),
        ...(target.credentials ? { credentials: target.credentials } : {}),
        ...(target.profile ? { profile: target.profile } : {}),
      });
      const region = await probe.config.region().catch(() => undefined);
      if (region === undefined || region === '') {
        probe.destroy();
        throw new UsageError('no AWS region: give --region, or set AWS_REGION or a region in your profile');
      }
      const credentials = probe.config.credentials;
      // The console (and its AWS clients) load only for this command.
      const { createAwsConsole } = await import('@pifleet/cloud');
      const awsConsole = createAwsConsole({
        region,
        credentials: () => credentials(),
        apiUrl,
        ...(wsUrl === undefined ? {} : { wsUrl }),
        ...(caPem === undefined ? {} : { caPem }),
        host: options.host,
        port,
        silentAfterMs,
        logger: ctx.log,
        env: ctx.io.env,
      });
      let started: { url: string; wsUrl: string };
      try {
        started = await awsConsole.start();
      } catch (err) {
        probe.destroy();
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') {
          throw new UnavailableError(`port ${port} is in use`, {
            hint: 'give another --port (0 picks a free one)',
            cause: err,
          });
        }
        const awsError = (err as { data?: { awsError?: unknown } }).data?.awsError;
        if (typeof awsError === 'string' && REFUSED_CREDENTIALS.has(awsError)) {
          throw new CredentialsError(`AWS refused the credentials: ${(err as Error).message}`, {
            hint: 'check AWS_PROFILE / AWS_ACCESS_KEY_ID, and that the IAM policy in the README ("The console for a deployed stack") is attached',
            cause: err,
          });
        }
        throw new UnavailableError(`the console could not reach the account: ${(err as Error).message}`, {
          hint: 'check the credentials, the region, --api-url and the IAM policy in the README ("Watching a deployed fleet")',
          cause: err,
        });
      }
      const line = ctx.opts.json
        ? `${JSON.stringify({ url: started.url, wsUrl: started.wsUrl, region })}\n`
        : `console: ${started.url}\n  (${region}, live feed ${started.wsUrl}; Ctrl-C stops it)\n`;
      ctx.io.stdout.write(line);
      await untilAborted(ctx.io.signal);
      await awsConsole.stop();
      probe.destroy();
      return { data: { stopped: true }, text: 'console stopped' };
    },
  );
}
