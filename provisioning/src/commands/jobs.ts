import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import {
  EXIT,
  JOB_STATUSES,
  type JobStatus,
  MAX_MANIFEST_BYTES,
  MAX_SIGNATURE_BYTES,
  releasePublicKeyProblem,
  verifyReleaseManifest,
} from '@pifleet/protocol';
import { type CommandOutput, type RunContext, type Runner, withCommonOptions } from '../app/command.js';
import { thingNotFound } from '../core/error-map.js';
import {
  agentUpdateJobDocument,
  configJobDocument,
  defaultJobId,
  intOption,
  JOB_LIMITS,
  JOB_TYPES,
  type JobTargets,
  type JobType,
  jobConfigurations,
  parseJobId,
  parseJobText,
  parseJobType,
  parseReasonCode,
  parseRoleArn,
  parseS3ObjectUrl,
  parseTargets,
  rebootJobDocument,
  releaseManifestOf,
  type S3ObjectUrl,
} from '../core/jobs-options.js';
import {
  executionTotals,
  isWatchDone,
  renderJob,
  renderJobBar,
  renderJobLine,
  renderJobList,
  targetName,
} from '../core/jobs-render.js';
import { CliError, ConflictError, InputError, InterruptedError, NotFoundError, UsageError } from '../errors.js';
import type { ArtifactStore } from '../ports/artifacts.js';
import type { JobExecutionRecord, JobRecord, JobsControl } from '../ports/jobs.js';

/** `jobs create|list|describe|cancel`: IoT Jobs of the three pifleet job types. */

const errName = (err: unknown) => (err as { name?: unknown } | null)?.name;

const jobNotFound = (ctx: RunContext, jobId: string) =>
  new NotFoundError(`job ${jobId} not found`, { hint: ctx.hints.pifleet('jobs list') });

/** Reads a small input file whole, refusing one larger than `max` bytes before reading it. */
async function readSmallFile(option: string, file: string, max: number): Promise<Uint8Array> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read ${option} file ${file} (${err.code ?? err.message})`);
  });
  if (!st.isFile()) throw new InputError(`${option} ${file} is not a file`);
  if (st.size > max) throw new InputError(`${option} ${file} is ${st.size} bytes; at most ${max} expected`);
  return new Uint8Array(await readFile(file));
}

/** Options that only one job type takes, so a mistyped command fails instead of sending another job. */
const TYPE_OPTIONS: Readonly<Record<string, JobType>> = {
  release: 'agent-update',
  url: 'agent-update',
  signature: 'agent-update',
  publicKey: 'agent-update',
  presignRoleArn: 'agent-update',
  urlExpiresSec: 'agent-update',
  config: 'config',
};
const OPTION_NAMES: Readonly<Record<string, string>> = {
  release: '--release',
  url: '--url',
  signature: '--signature',
  publicKey: '--public-key',
  presignRoleArn: '--presign-role-arn',
  urlExpiresSec: '--url-expires-sec',
  config: '--config',
};

export function registerJobsCommands(jobs: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      jobs
        .command('create')
        .description('create a job: agent-update (a signed release), config (desired settings) or reboot')
        .requiredOption('--type <type>', `job type: ${Object.keys(JOB_TYPES).join(' | ')}`)
        .option('--things <names>', 'target things, comma-separated')
        .option('--group <group>', 'target thing group (its child groups included)')
        .option('--job-id <id>', 'job id (default: TYPE-YYYYMMDDTHHMMSS-RANDOM)')
        .option('--description <text>', 'job description')
        .option('--reason <text>', 'a note in the job document, shown in the device log')
        .option('--rollout-per-minute <n>', 'at most N things notified per minute (1-1000)')
        .option(
          '--abort-failure-percent <p>',
          'cancel the job when P% of executed things failed, were rejected or timed out',
        )
        .option('--abort-min-executed <n>', 'things that must have executed before the abort applies (default 10)')
        .option(
          '--in-progress-timeout-minutes <t>',
          'an execution IN_PROGRESS longer than T minutes is TIMED_OUT (1-10080)',
        )
        .option('--retries <r>', 'retry a failed or timed-out execution up to R times (0-10)')
        .option('--continuous', 'keep the job open: things that join the group later run it too')
        .option('--release <manifest>', 'agent-update: the release manifest (.manifest.json) release build wrote')
        .option('--signature <file>', 'agent-update: the manifest signature (default: beside the manifest, .sig)')
        .option(
          '--public-key <file>',
          'agent-update: check the signature with the public key devices trust before sending',
        )
        .option('--url <s3url>', 'agent-update: the tarball S3 URL release upload printed')
        .option(
          '--presign-role-arn <arn>',
          'agent-update: the role IoT assumes to presign (AWS: the stack output ArtifactsPresignRoleArn; env PIFLEET_PRESIGN_ROLE_ARN)',
        )
        .option('--url-expires-sec <s>', 'agent-update: lifetime of the presigned URL (60-3600, default 3600)')
        .option('--config <json>', 'config: desired settings as JSON, or @FILE'),
    ),
    async (ctx, _args, o) => {
      const type = parseJobType(o.type);
      for (const [key, only] of Object.entries(TYPE_OPTIONS)) {
        if ((o as Record<string, unknown>)[key] !== undefined && only !== type) {
          throw new UsageError(`${OPTION_NAMES[key]} is for --type ${only} jobs, not ${type}`);
        }
      }
      const targets = parseTargets(o);
      const configurations = jobConfigurations(o);
      const description = o.description === undefined ? undefined : parseJobText('--description', o.description);
      const jobId =
        o.jobId === undefined
          ? defaultJobId(type, ctx.io.clock.now(), randomBytes(3).toString('hex'))
          : parseJobId(o.jobId);
      const reason = o.reason;

      let document: string;
      let presign: { roleArn?: string; expiresInSec: number } | undefined;
      let version: string | undefined;
      let artifact: { url: S3ObjectUrl; size: number } | undefined;
      if (type === 'agent-update') {
        if (o.release === undefined || o.url === undefined) {
          throw new UsageError('an agent-update job needs --release MANIFEST and --url S3URL', {
            hint: 'pifleet release build writes the manifest, pifleet release upload prints the URL',
          });
        }
        const url = parseS3ObjectUrl(o.url);
        const manifestFile = path.resolve(ctx.io.cwd, o.release);
        const signatureFile =
          o.signature !== undefined
            ? path.resolve(ctx.io.cwd, o.signature)
            : manifestFile.endsWith('.json')
              ? `${manifestFile.slice(0, -'.json'.length)}.sig`
              : undefined;
        if (signatureFile === undefined)
          throw new UsageError('give --signature FILE (the manifest is not a .json file)');
        const manifestBytes = await readSmallFile('--release', manifestFile, MAX_MANIFEST_BYTES);
        const signature = await readSmallFile('--signature', signatureFile, MAX_SIGNATURE_BYTES);
        if (signature.byteLength === 0)
          throw new InputError(`${signatureFile} is empty: devices refuse an unsigned release`);
        const manifest = releaseManifestOf(manifestBytes, manifestFile);
        if (o.publicKey !== undefined) {
          // What every device will check first: a release they would all refuse is not sent.
          const keyFile = path.resolve(ctx.io.cwd, o.publicKey);
          const pem = new TextDecoder().decode(await readSmallFile('--public-key', keyFile, 16 * 1024));
          const problem = releasePublicKeyProblem(pem);
          if (problem) throw new InputError(`--public-key ${keyFile}: ${problem}`);
          const check = verifyReleaseManifest(manifestBytes, signature, [pem], manifest.version);
          if (!check.ok) {
            throw new InputError(
              `devices trusting ${path.basename(keyFile)} would refuse this release: ${check.rejection.message}`,
              {
                hint: 'sign the release with the key whose public half the devices have (pifleet release build --key)',
              },
            );
          }
        }
        version = manifest.version;
        artifact = { url, size: manifest.size };
        document = agentUpdateJobDocument({
          manifest,
          files: { manifestBytes, signature },
          url,
          ...(reason !== undefined ? { reason } : {}),
        });
        const roleArn = o.presignRoleArn ?? ctx.io.env.PIFLEET_PRESIGN_ROLE_ARN;
        presign = {
          ...(roleArn !== undefined && roleArn !== '' ? { roleArn: parseRoleArn('--presign-role-arn', roleArn) } : {}),
          expiresInSec:
            o.urlExpiresSec === undefined
              ? JOB_LIMITS.urlExpiresSec.max
              : intOption(
                  '--url-expires-sec',
                  o.urlExpiresSec,
                  JOB_LIMITS.urlExpiresSec.min,
                  JOB_LIMITS.urlExpiresSec.max,
                ),
        };
      } else if (type === 'config') {
        if (o.config === undefined) {
          throw new UsageError('a config job needs --config JSON (or @FILE)', {
            hint: `e.g. --config '{"sampling":{"bme280":5000}}'`,
          });
        }
        const text = o.config.startsWith('@')
          ? new TextDecoder().decode(
              await readSmallFile('--config', path.resolve(ctx.io.cwd, o.config.slice(1)), 64 * 1024),
            )
          : o.config;
        document = configJobDocument(text, reason);
      } else {
        document = rebootJobDocument(reason);
      }

      const services = await ctx.services();
      if (presign && presign.roleArn === undefined && services.target.kind === 'aws') {
        throw new UsageError('an agent-update job in AWS needs --presign-role-arn (or PIFLEET_PRESIGN_ROLE_ARN)', {
          hint: 'the role IoT assumes to presign the tarball URL: the stack output ArtifactsPresignRoleArn',
        });
      }
      if (artifact) await checkArtifact(ctx, await services.artifacts(), artifact);
      const targetArns = await resolveTargets(ctx, targets);
      if (presign && presign.roleArn === undefined) {
        // The local core presigns with its own credentials; any role ARN of the account will do.
        presign = { ...presign, roleArn: `arn:aws:iam::${accountOf(targetArns[0] ?? '')}:role/pifleet-local-presign` };
      }
      try {
        const created = await services.jobs.createJob({
          jobId,
          targets: targetArns,
          document,
          ...configurations,
          ...(description !== undefined ? { description } : {}),
          ...(presign?.roleArn !== undefined
            ? { presignedUrlConfig: { roleArn: presign.roleArn, expiresInSec: presign.expiresInSec } }
            : {}),
        });
        const what = version !== undefined ? `${type} ${version}` : type;
        const lines = [
          `created job ${created.jobId}: ${what} for ${targetArns.map(targetName).join(', ')} (${configurations.targetSelection})`,
          ...(configurations.jobExecutionsRolloutConfig
            ? [`rollout: at most ${configurations.jobExecutionsRolloutConfig.maximumPerMinute} things per minute`]
            : []),
          ...(configurations.abortConfig
            ? configurations.abortConfig.criteriaList.map(
                (c) =>
                  `abort: cancel when ${c.thresholdPercentage}% of at least ${c.minNumberOfExecutedThings} executed things failed`,
              )
            : []),
          `follow it: ${ctx.hints.pifleet(`jobs describe ${created.jobId} --watch`)}`,
        ];
        return {
          data: {
            ...created,
            type,
            ...(version !== undefined ? { version } : {}),
            targets: targetArns,
            ...configurations,
            document: JSON.parse(document) as unknown,
          },
          text: lines.join('\n'),
        };
      } catch (err) {
        if (errName(err) === 'ResourceAlreadyExistsException') {
          throw new ConflictError('JOB_EXISTS', `job ${jobId} exists`, {
            hint: 'give another --job-id (a job id is never reused, not even after the job is deleted)',
            cause: err,
          });
        }
        if (errName(err) === 'LimitExceededException') {
          throw new CliError('JOB_LIMIT', `IoT refused another job: ${(err as Error).message}`, EXIT.unavailable, {
            hint: `finish or cancel jobs first (${ctx.hints.pifleet('jobs list --status IN_PROGRESS')})`,
            cause: err,
          });
        }
        throw err;
      }
    },
  );

  run(
    withCommonOptions(
      jobs
        .command('list')
        .description('list jobs, newest first as IoT returns them')
        .option('--status <status>', `only jobs in this status: ${JOB_STATUSES.join(' | ')}`)
        .option('--group <group>', 'only jobs that target this thing group')
        .option('--max <n>', 'stop after this many jobs'),
    ),
    async (ctx, _args, o) => {
      if (o.status !== undefined && !(JOB_STATUSES as readonly string[]).includes(o.status)) {
        throw new UsageError(`unknown --status ${JSON.stringify(o.status)}`, {
          hint: `use one of: ${JOB_STATUSES.join(', ')}`,
        });
      }
      const max = o.max === undefined ? undefined : intOption('--max', o.max, 1, 1_000_000);
      const { jobs: control } = await ctx.services();
      const found: Awaited<ReturnType<typeof control.listJobs>>['jobs'][number][] = [];
      let nextToken: string | undefined;
      do {
        const page = await control.listJobs({
          ...(o.status !== undefined ? { status: o.status as JobStatus } : {}),
          ...(o.group !== undefined ? { thingGroupName: o.group } : {}),
          maxResults: 100,
          ...(nextToken ? { nextToken } : {}),
        });
        found.push(...page.jobs);
        nextToken = page.nextToken;
      } while (nextToken && (max === undefined || found.length < max));
      const shown = max === undefined ? found : found.slice(0, max);
      return { data: { jobs: shown }, text: renderJobList(shown) };
    },
  );

  run(
    withCommonOptions(
      jobs
        .command('describe')
        .description(
          'show a job: status and executions by status; --watch follows it until it completes or is canceled',
        )
        .argument('<jobId>', 'job id')
        .option('--executions', "list every thing's execution; a failed one with the reason its device reported")
        .option('--watch', 'poll until the job is done: a progress bar on a terminal, a line per change otherwise')
        .option('--interval <seconds>', 'seconds between polls with --watch (1-300)', '5'),
    ),
    async (ctx, [rawId], o) => {
      const jobId = parseJobId(rawId);
      const interval = intOption('--interval', o.interval, 1, 300);
      const { jobs: control } = await ctx.services();
      const first = await control.describeJob(jobId);
      if (!first) throw jobNotFound(ctx, jobId);
      const { job, interrupted } =
        o.watch === true
          ? await watch(ctx, first, interval, (id) => control.describeJob(id))
          : { job: first, interrupted: false };
      const executions = o.executions === true ? await withFailureDetails(control, jobId) : undefined;
      return describeOutput(ctx, job, executions, o.watch === true, interrupted);
    },
  );

  run(
    withCommonOptions(
      jobs
        .command('cancel')
        .description('cancel a job: queued executions are canceled; --force cancels in-progress ones too')
        .argument('<jobId>', 'job id')
        .option('--force', 'also cancel executions IN_PROGRESS (the device may be mid-update: the agent rolls back)')
        .option('--comment <text>', 'why the job was canceled')
        .option('--reason-code <code>', 'a code saying why, for scripts'),
    ),
    async (ctx, [rawId], o) => {
      const jobId = parseJobId(rawId);
      const comment = o.comment === undefined ? undefined : parseJobText('--comment', o.comment);
      const reasonCode = o.reasonCode === undefined ? undefined : parseReasonCode(o.reasonCode);
      const { jobs: control } = await ctx.services();
      const job = await control.describeJob(jobId);
      if (!job) throw jobNotFound(ctx, jobId);
      const force = o.force === true;
      if (job.status === 'COMPLETED' || job.status === 'DELETION_IN_PROGRESS') {
        throw new ConflictError('JOB_STATE', `job ${jobId} is ${job.status}; only a job in progress can be canceled`, {
          hint: ctx.hints.pifleet(`jobs describe ${jobId}`),
        });
      }
      if (job.status === 'CANCELED' && (!force || job.forceCanceled === true)) {
        return { data: { jobId, status: job.status, changed: false }, text: `job ${jobId} is already canceled` };
      }
      try {
        if (
          !(await control.cancelJob(jobId, {
            force,
            ...(comment !== undefined ? { comment } : {}),
            ...(reasonCode !== undefined ? { reasonCode } : {}),
          }))
        ) {
          throw jobNotFound(ctx, jobId);
        }
      } catch (err) {
        if (errName(err) === 'InvalidStateTransitionException' || errName(err) === 'ConflictException') {
          throw new ConflictError('JOB_STATE', `job ${jobId} cannot be canceled now: ${(err as Error).message}`, {
            hint: ctx.hints.pifleet(`jobs describe ${jobId}`),
            cause: err,
          });
        }
        throw err;
      }
      const after = await control.describeJob(jobId);
      return {
        data: {
          jobId,
          status: after?.status ?? 'CANCELED',
          force,
          changed: true,
          ...(after ? { counts: after.counts } : {}),
        },
        text: `canceled job ${jobId}${force ? ' (forced: in-progress executions canceled too)' : ''}${after ? `\nexecutions: ${renderJobLine(after).split(': ').slice(1).join(': ')}` : ''}`,
      };
    },
  );
}

/**
 * The tarball the job will send devices to must be where the URL says, with the manifest's size:
 * a wrong URL would otherwise fail on every device (each refusing bytes that miss the signed
 * SHA-256). A store that will not say (no s3:GetObject for these credentials) is not a refusal.
 */
async function checkArtifact(ctx: RunContext, store: ArtifactStore, artifact: { url: S3ObjectUrl; size: number }) {
  const { bucket, key } = artifact.url;
  let found: Awaited<ReturnType<ArtifactStore['head']>>;
  try {
    found = await store.head(bucket, key);
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 403) throw err;
    ctx.log.warn({ bucket, key }, 'cannot check the release tarball (HeadObject refused): creating the job anyway');
    return;
  }
  if (!found) {
    throw new NotFoundError(`no object at ${artifact.url.url}`, {
      hint: `upload the release first: ${ctx.hints.pifleet(`release upload TARBALL MANIFEST SIGNATURE --bucket ${bucket}`)}`,
    });
  }
  if (found.size !== artifact.size) {
    throw new InputError(
      `the object at ${artifact.url.url} is ${found.size} bytes; the manifest names ${artifact.size}`,
      {
        hint: 'give the URL of the tarball this manifest was built with',
      },
    );
  }
}

/** Failed executions shown with the reason the device reported, at most this many (one request each). */
const DETAILED_FAILURES = 50;

/**
 * Every execution of the job; the failed, rejected and timed-out ones (the first
 * {@link DETAILED_FAILURES}) with the statusDetails the device reported, which say why.
 */
async function withFailureDetails(control: JobsControl, jobId: string): Promise<JobExecutionRecord[] | undefined> {
  const all = await control.listExecutions(jobId);
  if (!all) return undefined;
  let budget = DETAILED_FAILURES;
  const out: JobExecutionRecord[] = [];
  for (const e of all) {
    if ((e.status === 'FAILED' || e.status === 'REJECTED' || e.status === 'TIMED_OUT') && budget > 0) {
      budget--;
      const described = await control.describeExecution(jobId, e.thingName);
      out.push(described?.statusDetails ? { ...e, statusDetails: described.statusDetails } : e);
    } else out.push(e);
  }
  return out;
}

/** The account of an IoT ARN (`arn:aws:iot:REGION:ACCOUNT:…`). */
function accountOf(arn: string): string {
  return arn.split(':')[4] ?? '000000000000';
}

/** Target ARNs from names: each thing (or the group) must exist — a typo fails here, not on no device. */
async function resolveTargets(ctx: RunContext, targets: JobTargets): Promise<string[]> {
  const { registry } = await ctx.services();
  if ('group' in targets) {
    const group = await registry.describeThingGroup(targets.group);
    if (!group)
      throw new NotFoundError(`thing group ${targets.group} not found`, { hint: ctx.hints.pifleet('groups list') });
    return [group.thingGroupArn];
  }
  const arns: string[] = [];
  for (const name of targets.things) {
    const thing = await registry.describeThing(name);
    if (!thing?.thingArn) throw thingNotFound(name, ctx.hints);
    arns.push(thing.thingArn);
  }
  return arns;
}

/**
 * Polls the job until it is done, drawing progress on stderr (a bar redrawn in place on a terminal,
 * a line per change otherwise). An interrupt (Ctrl-C) ends the watch, not the job.
 */
async function watch(
  ctx: RunContext,
  first: JobRecord,
  intervalSeconds: number,
  describe: (jobId: string) => Promise<JobRecord | undefined>,
): Promise<{ job: JobRecord; interrupted: boolean }> {
  const { stderr, isTTY, clock, signal } = ctx.io;
  let job = first;
  let last = '';
  const show = () => {
    if (isTTY) stderr.write(`\r${renderJobBar(job)}\x1b[K`);
    else {
      const line = renderJobLine(job);
      if (line !== last) stderr.write(`${line}\n`);
      last = line;
    }
  };
  show();
  let interrupted = false;
  while (!isWatchDone(job)) {
    try {
      await clock.sleep(intervalSeconds * 1000, signal);
    } catch {
      interrupted = true;
      break;
    }
    if (signal?.aborted) {
      interrupted = true;
      break;
    }
    const next = await describe(job.jobId);
    if (!next) throw new NotFoundError(`job ${job.jobId} was deleted while watching`);
    job = next;
    show();
  }
  if (isTTY) stderr.write('\n');
  return { job, interrupted };
}

function describeOutput(
  ctx: RunContext,
  job: JobRecord,
  executions: readonly JobExecutionRecord[] | undefined,
  watched: boolean,
  interrupted: boolean,
): CommandOutput {
  const { failures } = executionTotals(job.counts);
  const data = { ...job, ...(executions ? { executions } : {}) };
  const text = renderJob(job, executions);
  // A watch ends in the job's outcome: a script can wait for a rollout and stop on a bad one.
  const error = interrupted
    ? new InterruptedError(`stopped watching job ${job.jobId} (it goes on)`, {
        hint: ctx.hints.pifleet(`jobs describe ${job.jobId} --watch`),
      })
    : watched && (job.status === 'CANCELED' || failures > 0)
      ? new CliError(
          'JOB_FAILED',
          job.status === 'CANCELED'
            ? `job ${job.jobId} was canceled${job.reasonCode ? ` (${job.reasonCode})` : ''}`
            : `job ${job.jobId} completed with ${failures} failed execution${failures === 1 ? '' : 's'}`,
          1,
          { hint: ctx.hints.pifleet(`jobs describe ${job.jobId} --executions`) },
        )
      : undefined;
  return { data, text, ...(error ? { error } : {}) };
}
