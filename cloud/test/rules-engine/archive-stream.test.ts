import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createLocalCloud } from '../../src/app/cloud-wiring.js';
import { prepareMessage, type RuleOutput } from '../../src/core/iotsql/index.js';
import { silentLogger } from '../../src/logger.js';
import { firehoseAction } from '../../src/rules/actions/archive.js';
import { isTransientFailure, RuleActionError, RuleLoadError } from '../../src/rules/actions/errors.js';
import {
  archiveDay,
  archiveStamp,
  archiveStreamProblem,
  firehoseLayout,
  thingPartitionProblem,
} from '../../src/rules/archive-layout.js';
import { type ArchiveStream, RULES, TELEMETRY_ARCHIVE } from '../../src/rules/definitions.js';
import { createRulesEngine } from '../../src/rules/engine.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { ACCOUNT, within } from '../broker/fixtures.js';
import { logSink } from '../log-sink.js';
import { engineDirs, rule, rulesEngineBed } from './fixtures.js';

/**
 * The buffered archive (a Firehose delivery stream in AWS): records held per thing and day, one
 * gzip object of JSON lines per partition per flush, under the layout of archive-layout.ts, and
 * written on stop. Real files, real gzip; the engine suites run on the real broker bus.
 */

let broker: Parameters<Parameters<typeof rulesEngineBed>[1]>[0]['broker'];
let dir: string;
let n = 0;
const engines = rulesEngineBed('archive-stream', (bed) => {
  ({ broker, dir } = bed);
});

const DAY1 = Date.UTC(2026, 11, 3, 23, 59, 58);
const DAY2 = Date.UTC(2026, 11, 4, 0, 0, 1);

/** Every file under `root`, relative, sorted. */
function filesUnder(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

const linesOf = (file: string): unknown[] =>
  gunzipSync(readFileSync(file))
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);

/** A firehose action on a fresh dir, and a way to run one record through it as the engine does. */
function bed(buffering: Parameters<typeof firehoseAction>[2]['buffering'] = {}, stream = TELEMETRY_ARCHIVE) {
  const root = join(dir, `action-${++n}`);
  const failures: { err: unknown; key: string; records: number }[] = [];
  let uuid = 0;
  const action = firehoseAction(stream, '\n', {
    dir: root,
    buffering,
    newUuid: () => `u${++uuid}`,
    onWriteError: (err, key, records) => failures.push({ err, key, records }),
  });
  const put = (output: RuleOutput, timestamp = DAY1) =>
    action.run({
      message: prepareMessage({ topic: 'pifleet/x/telemetry', payload: '{}', timestamp }),
      output,
      ctx: {},
    });
  return { root, action, put, failures };
}

const record = (thing: string, seq: number) => ({ ...batchOf(thing, seq, []), topicThing: thing });

async function eventually(check: () => boolean, what: string): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((r) => setTimeout(r, 5));
    })(),
    5_000,
    what,
  );
}

describe('archive layout', () => {
  it('dates and stamps in UTC, as Firehose names objects', () => {
    expect(archiveDay(DAY1)).toBe('2026-12-03');
    expect(archiveDay(DAY2)).toBe('2026-12-04');
    expect(archiveStamp(DAY1)).toBe('2026-12-03-23-59-58');
  });

  it('gives the CDK the same layout as Firehose expressions', () => {
    expect(firehoseLayout(TELEMETRY_ARCHIVE)).toEqual({
      prefix: 'raw/thing=!{partitionKeyFromQuery:thing}/date=!{timestamp:yyyy-MM-dd}/',
      errorOutputPrefix: 'raw-errors/!{firehose:error-output-type}/date=!{timestamp:yyyy-MM-dd}/',
      metadataExtractionQuery: '{thing: .topicThing}',
      fileExtension: '.jsonl.gz',
    });
    expect(archiveStreamProblem(TELEMETRY_ARCHIVE)).toBeUndefined();
  });

  it.each<[string, Partial<ArchiveStream>, RegExp]>([
    ['a stream name with a space', { name: 'a b' }, /stream name/],
    ['a prefix without the slash', { prefix: 'raw' }, /prefix must/],
    ['a prefix climbing out', { prefix: '../raw/' }, /prefix must/],
    ['an error prefix inside the data prefix', { errorPrefix: 'raw/errors/' }, /contain one another/],
    ['a thing field JQ cannot address', { thingField: 'topic.thing' }, /plain identifier/],
    ['a __proto__-like field with a dash', { thingField: '-x' }, /plain identifier/],
  ])('refuses %s', (_what, change, problem) => {
    expect(archiveStreamProblem({ ...TELEMETRY_ARCHIVE, ...change })).toMatch(problem);
  });

  it.each<[string, unknown, RegExp | undefined]>([
    ['a thing name', 'pi-01:a_b', undefined],
    ['a missing field', undefined, /missing/],
    ['a number', 7, /not a string/],
    ['an empty string', '', /empty/],
    ['a slash', 'a/b', /contains/],
    ['a backslash', 'a\\b', /contains/],
    ['a NUL', 'a\u0000b', /contains/],
    ['129 bytes', 'x'.repeat(129), /longer than 128/],
  ])('a thing field of %s', (_what, value, problem) => {
    const got = thingPartitionProblem(value);
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(problem);
  });
});

describe('firehose action (the local archive stream)', () => {
  it('holds records in memory, then writes one gzip object of JSON lines per thing and day', async () => {
    const { root, action, put } = bed();
    const outputs = [record('pi-a', 1), record('pi-b', 1), record('pi-a', 2)];
    for (const o of outputs) await put(o);
    await put(record('pi-a', 3), DAY2);
    expect(filesUnder(root)).toEqual([]);
    expect(action.stats()).toMatchObject({ bufferedRecords: 4, partitions: 3, objectsWritten: 0 });

    await action.flush();
    const files = filesUnder(root);
    expect(files).toEqual([
      'raw/thing=pi-a/date=2026-12-03/pifleet-telemetry-archive-1-2026-12-03-23-59-58-u1.jsonl.gz',
      'raw/thing=pi-a/date=2026-12-04/pifleet-telemetry-archive-1-2026-12-04-00-00-01-u3.jsonl.gz',
      'raw/thing=pi-b/date=2026-12-03/pifleet-telemetry-archive-1-2026-12-03-23-59-58-u2.jsonl.gz',
    ]);
    expect(linesOf(join(root, files[0] as string))).toEqual([outputs[0], outputs[2]]);
    expect(linesOf(join(root, files[2] as string))).toEqual([outputs[1]]);
    expect(action.stats()).toMatchObject({
      bufferedRecords: 0,
      bufferedBytes: 0,
      objectsWritten: 3,
      recordsWritten: 4,
    });
    // Nothing half-written is left behind, and a second flush writes nothing.
    await action.flush();
    expect(filesUnder(root)).toHaveLength(3);
  });

  it('writes a partition by itself once it holds maxObjectBytes', async () => {
    const { root, action, put } = bed({ maxObjectBytes: 600, maxAgeMs: 3_600_000 });
    const one = JSON.stringify(record('pi-c', 1)).length + 1;
    const count = Math.ceil(600 / one);
    for (let i = 1; i <= count; i++) await put(record('pi-c', i));
    await put(record('pi-d', 1));
    await eventually(() => action.stats().objectsWritten === 1, 'the full partition written');
    const files = filesUnder(root);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^raw\/thing=pi-c\//);
    expect(linesOf(join(root, files[0] as string))).toHaveLength(count);
    expect(action.stats()).toMatchObject({ bufferedRecords: 1, partitions: 1 });
  });

  it('writes a partition by itself maxAgeMs after its first record', async () => {
    const { root, action, put } = bed({ maxAgeMs: 20 });
    // Both join the partition in this tick (run buffers synchronously), before its timer can fire.
    await Promise.all([put(record('pi-e', 1)), put(record('pi-e', 2))]);
    await eventually(() => action.stats().objectsWritten === 1, 'the old partition written');
    expect(linesOf(join(root, filesUnder(root)[0] as string))).toEqual([record('pi-e', 1), record('pi-e', 2)]);
  });

  it('keeps memory under maxBufferedBytes by writing every partition when a record would pass it', async () => {
    const size = JSON.stringify(record('pi-f0', 1)).length + 1;
    const { root, action, put } = bed({ maxBufferedBytes: size * 5, maxAgeMs: 3_600_000 });
    let peak = 0;
    for (let i = 0; i < 23; i++) {
      await put(record(`pi-f${i % 7}`, i));
      peak = Math.max(peak, action.stats().bufferedBytes);
    }
    expect(peak).toBeLessThanOrEqual(size * 5);
    await action.flush();
    const lines = filesUnder(root).flatMap((f) => linesOf(join(root, f)));
    expect(lines).toHaveLength(23);
    expect(action.stats().recordsWritten).toBe(23);
  });

  it('keeps the records of a failed write and writes them once the disk is back: nothing lost', async () => {
    const { root, action, put, failures } = bed({ maxAgeMs: 3_600_000 });
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'raw'), 'a file where the prefix directory goes');
    await put(record('pi-g', 1));
    await put(record('pi-g', 2));
    await action.flush();
    expect(failures).toHaveLength(1);
    expect(failures[0]?.records).toBe(2);
    expect(action.stats()).toMatchObject({ bufferedRecords: 2, objectsWritten: 0, writeFailures: 1 });
    await put(record('pi-g', 3));

    rmSync(join(root, 'raw'));
    await action.flush();
    const files = filesUnder(root);
    expect(files).toHaveLength(1);
    expect(linesOf(join(root, files[0] as string))).toEqual([record('pi-g', 1), record('pi-g', 2), record('pi-g', 3)]);
    expect(action.stats()).toMatchObject({ bufferedRecords: 0, bufferedBytes: 0 });
  });

  it('refuses a record when the buffer is full and cannot be written (the message is then not lost: it fails)', async () => {
    const size = JSON.stringify(record('pi-h', 1)).length + 1;
    const { root, action, put } = bed({ maxBufferedBytes: size * 2, maxAgeMs: 3_600_000 });
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'raw'), 'in the way');
    await put(record('pi-h', 1));
    await put(record('pi-h', 2));
    const err = await put(record('pi-h', 3)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RuleActionError);
    expect((err as RuleActionError).failedAction).toBe('FirehoseAction');
    expect((err as RuleActionError).message).toMatch(/archive buffer is full/);
    expect(isTransientFailure(err)).toBe(false);
    expect(action.stats().bufferedRecords).toBe(2);
    rmSync(join(root, 'raw'));
    await action.flush();
    expect(action.stats().recordsWritten).toBe(2);
  });

  it.each<[string, RuleOutput, Buffer]>([
    ['a JSON array', [1, 2], Buffer.from('[1,2]')],
    ['raw bytes', new Uint8Array([0xff, 0x00, 0x41]), Buffer.from([0xff, 0x00, 0x41])],
    ['a string', 'just text', Buffer.from('"just text"')],
    ['an object without the thing field', { v: 1 }, Buffer.from('{"v":1}')],
    ['a thing field that climbs out', { topicThing: '../../etc' }, Buffer.from('{"topicThing":"../../etc"}')],
    ['a thing field that is an object', { topicThing: { a: 1 } }, Buffer.from('{"topicThing":{"a":1}}')],
  ])('files %s under the error prefix, wrapped with its raw bytes', async (_what, output, raw) => {
    const { root, action, put } = bed();
    await put(output);
    await action.flush();
    const files = filesUnder(root);
    expect(files).toEqual([
      'raw-errors/partitioning-failed/date=2026-12-03/pifleet-telemetry-archive-1-2026-12-03-23-59-58-u1.jsonl.gz',
    ]);
    const [wrapped] = linesOf(join(root, files[0] as string)) as { rawData: string; errorCode: string }[];
    expect(wrapped?.errorCode).toBe('DynamicPartitioning.MetadataExtractionFailed');
    expect(wrapped?.rawData).toBe(raw.toString('base64'));
  });

  it('never takes the thing from a __proto__ key or the prototype chain', async () => {
    const { root, action, put } = bed();
    const hostile = JSON.parse('{"__proto__":{"topicThing":"victim"},"v":1}') as RuleOutput;
    await put(hostile);
    const inherited = Object.create({ topicThing: 'victim' }) as RuleOutput;
    await put(inherited);
    await action.flush();
    expect(filesUnder(root).every((f) => f.startsWith('raw-errors/partitioning-failed/'))).toBe(true);
    expect(filesUnder(root).some((f) => f.includes('victim'))).toBe(false);
    expect(({} as Record<string, unknown>).topicThing).toBeUndefined();
  });

  it('keeps deep and large records whole, one line each', async () => {
    const { root, action, put } = bed();
    let deep: unknown = 1;
    for (let i = 0; i < 1_000; i++) deep = { d: deep };
    const big = { topicThing: 'pi-i', blob: 'x'.repeat(120_000), deep } as RuleOutput;
    await put(big);
    await put({ topicThing: 'pi-i', text: 'line\nbreak' });
    await action.flush();
    const lines = linesOf(join(root, filesUnder(root)[0] as string));
    expect(lines).toEqual([big, { topicThing: 'pi-i', text: 'line\nbreak' }]);
  });
});

describe('the archive stream in the rules engine', () => {
  const base = () => join(dir, `engine-${++n}`);
  const archived = (root: string) => filesUnder(join(root, 'archive'));
  /** An engine under `root` with one rule `name` archiving every telemetry message, on day 1. */
  const archiveEngine = (root: string, name: string) =>
    createRulesEngine({
      rules: [
        rule(name, "SELECT *, topic(2) AS topicThing FROM 'pifleet/+/telemetry'", [
          { kind: 'firehose', stream: TELEMETRY_ARCHIVE, separator: '\n' },
        ]),
      ],
      bus: broker.bus,
      handlers: {},
      ...engineDirs(root),
      clock: { now: () => DAY1 },
      logger: silentLogger(),
    });

  it('archives the shipped rule: the topic thing added, one object on flushArchive, none before', async () => {
    const root = base();
    const archiveRule = RULES.find((r) => r.name === 'pifleet_telemetry_archive');
    if (archiveRule === undefined) throw new Error('no archive rule');
    const engine = createRulesEngine({
      rules: [archiveRule],
      bus: broker.bus,
      handlers: {},
      ...engineDirs(root),
      clock: { now: () => DAY1 },
      logger: silentLogger(),
      newUuid: () => 'u',
    });
    engines.push(engine);
    await engine.start();
    const batch = batchOf('pi-j', 1, [{ sensor: 'bme280', ts: DAY1, metrics: { temperature: 20 } }]);
    // The payload claims another thing: the partition is the topic's.
    const claimed = { ...batch, thingName: 'someone-else' };
    await broker.bus.publish('pifleet/pi-j/telemetry', JSON.stringify(claimed), { qos: 1 });
    await within(
      (async () => {
        while (engine.stats().rules[0]?.actions.succeeded !== 1) await engine.idle();
      })(),
      5_000,
      'archive action',
    );
    expect(archived(root)).toEqual([]);
    await engine.flushArchive();
    expect(archived(root)).toEqual([
      'raw/thing=pi-j/date=2026-12-03/pifleet-telemetry-archive-1-2026-12-03-23-59-58-u.jsonl.gz',
    ]);
    expect(linesOf(join(root, 'archive', archived(root)[0] as string))).toEqual([{ ...claimed, topicThing: 'pi-j' }]);
  });

  it('writes what is buffered when the engine stops: a clean stop loses nothing', async () => {
    const root = base();
    const engine = archiveEngine(root, 'arch_stop');
    await engine.start();
    for (let i = 1; i <= 5; i++)
      await engine.ingest({ topic: `pifleet/pi-k${i % 2}/telemetry`, payload: `{"seq":${i}}` } as never);
    await engine.idle();
    expect(archived(root)).toEqual([]);
    await engine.stop();
    const files = archived(root);
    expect(files).toHaveLength(2);
    const seqs = files.flatMap((f) => linesOf(join(root, 'archive', f))).map((l) => (l as { seq: number }).seq);
    expect(seqs.sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('writes what a removed rule buffered', async () => {
    const root = base();
    const engine = archiveEngine(root, 'arch_removed');
    engines.push(engine);
    await engine.start();
    await engine.ingest({ topic: 'pifleet/pi-l/telemetry', payload: '{"seq":1}' } as never);
    await engine.idle();
    expect(await engine.removeRule('arch_removed')).toBe(true);
    expect(archived(root)).toHaveLength(1);
  });

  it('a stop that cannot write the archive logs the failed write and the records lost, and still stops', async () => {
    const root = base();
    mkdirSync(join(root, 'archive'), { recursive: true });
    writeFileSync(join(root, 'archive', 'raw'), 'a file where the prefix directory goes');
    const { logger, lines } = logSink();
    const engine = createRulesEngine({
      rules: [
        rule('arch_blocked', "SELECT *, topic(2) AS topicThing FROM 'pifleet/+/telemetry'", [
          { kind: 'firehose', stream: TELEMETRY_ARCHIVE, separator: '\n' },
        ]),
      ],
      bus: broker.bus,
      handlers: {},
      ...engineDirs(root),
      clock: { now: () => DAY1 },
      logger,
    });
    await engine.start();
    await engine.ingest({ topic: 'pifleet/pi-n/telemetry', payload: '{"seq":1}' } as never);
    await engine.ingest({ topic: 'pifleet/pi-n/telemetry', payload: '{"seq":2}' } as never);
    await engine.idle();
    await engine.stop();
    expect(lines.find((l) => l.msg === 'archive object not written; its records are kept')).toMatchObject({
      rule: 'arch_blocked',
      records: 2,
      key: expect.stringMatching(/^raw\/thing=pi-n\/date=2026-12-03\//),
    });
    expect(
      lines.find((l) => l.msg === 'archive records lost on stop: their objects could not be written'),
    ).toMatchObject({ level: 50, records: 2 });
    expect(lines.at(-1)?.msg).toBe('rules engine stopped');
  });

  it('the local cloud passes its archive buffering to the engine: a 20 ms interval writes by itself', async () => {
    const root = base();
    const cloud = createLocalCloud({
      bus: broker.bus,
      account: ACCOUNT,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      telemetryFile: join(root, 'telemetry.db'),
      archiveDir: join(root, 'archive'),
      archiveBuffering: { maxAgeMs: 20 },
      ruleLogDir: join(root, 'logs'),
      now: () => DAY1,
      logger: silentLogger(),
    });
    await cloud.start();
    try {
      const batch = batchOf('pi-o', 1, [{ sensor: 'bme280', ts: DAY1, metrics: { temperature: 20 } }]);
      await cloud.rules.ingest({ topic: 'pifleet/pi-o/telemetry', payload: JSON.stringify(batch) } as never);
      await eventually(() => archived(root).length === 1, 'the object written by its interval, without a flush');
      expect(archived(root)[0]).toMatch(/^raw\/thing=pi-o\/date=2026-12-03\//);
    } finally {
      await cloud.stop();
    }
  });

  it('refuses to load a stream it could not write', () => {
    expect(() =>
      createRulesEngine({
        rules: [
          rule('arch_bad', "SELECT * FROM 'a/b'", [
            { kind: 'firehose', stream: { ...TELEMETRY_ARCHIVE, prefix: '../up/' }, separator: '\n' },
          ]),
        ],
        bus: broker.bus,
        handlers: {},
        ...engineDirs(base()),
        clock: { now: Date.now },
        logger: silentLogger(),
      }),
    ).toThrow(RuleLoadError);
  });
});
