import type { JsonObject, JsonValue } from '@pifleet/protocol';
import { expect } from 'vitest';

/**
 * Shadow update sequences with their expected state, delta and version, built from the AWS IoT
 * Developer Guide's examples ("Device Shadow service documents", "Interacting with shadows",
 * "Simulating Device Shadow service communications", "Device Shadow MQTT topics").
 *
 * Data only, so one table runs over every transport: call {@link runSequence} with an
 * {@link ApplyStep} for the service directly, MQTT (the device SDK's shadow client) or HTTP
 * (`@aws-sdk/client-iot-data-plane`). Each sequence starts on a thing that has no shadows.
 */

export type SequenceStep =
  | {
      readonly op: 'update';
      readonly shadowName?: string;
      /** The request document, sent as JSON. */
      readonly request: JsonObject;
      readonly expect: UpdateExpectation | ErrorExpectation;
    }
  | { readonly op: 'get'; readonly shadowName?: string; readonly expect: GetExpectation | ErrorExpectation }
  | {
      readonly op: 'delete';
      readonly shadowName?: string;
      readonly expect: { readonly version: number } | ErrorExpectation;
    };

export interface UpdateExpectation {
  readonly version: number;
  /** The `/update/delta` state published for this update; null when no delta message is published. */
  readonly delta: JsonObject | null;
  /** Whether `/update/documents` has `previous: null` (the shadow did not exist before). */
  readonly created?: boolean;
  /** `/update/documents`'s `current.state`, when the step checks it. */
  readonly currentState?: JsonObject;
}

export interface GetExpectation {
  readonly version: number;
  /** The whole `state`, including `delta` when there is one. */
  readonly state: JsonObject;
  /** The metadata's shape: every `{timestamp: n}` written as `{timestamp: 'T'}`. */
  readonly metadataShape?: JsonObject;
}

export interface ErrorExpectation {
  readonly code: number;
  readonly message: string;
}

export interface Sequence {
  readonly name: string;
  readonly steps: readonly SequenceStep[];
}

/** What a transport saw for one step. */
export interface StepObservation {
  readonly ok: boolean;
  /** The accepted document, or the error `{code, message}`. */
  readonly body: JsonObject;
  /** For updates: the `/update/delta` payload for this request, null when none was published; undefined when not observed. */
  readonly delta?: JsonObject | null;
  /** For updates: the `/update/documents` payload; undefined when not observed. */
  readonly documents?: JsonObject;
}

export type ApplyStep = (thingName: string, step: SequenceStep) => Promise<StepObservation>;

const T = 'T';

function isError(e: object): e is ErrorExpectation {
  return 'code' in e;
}

/** Replaces every metadata timestamp by 'T', so shapes compare across clocks. */
export function metadataShape(meta: JsonValue | undefined): JsonValue | undefined {
  if (meta === undefined || meta === null || typeof meta !== 'object') return meta;
  if (Array.isArray(meta)) return meta.map((m) => metadataShape(m) ?? null);
  const keys = Object.keys(meta);
  if (keys.length === 1 && keys[0] === 'timestamp' && typeof meta.timestamp === 'number') return { timestamp: T };
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(meta)) out[k] = metadataShape(v) ?? null;
  return out;
}

/** The metadata shape IoT returns for a request state: leaves and nulls become `{timestamp}`. */
export function expectedMetadataShape(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(expectedMetadataShape);
  if (value !== null && typeof value === 'object') {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = expectedMetadataShape(v);
    return out;
  }
  return { timestamp: T };
}

/** Runs one sequence through `apply` and checks every step. */
export async function runSequence(sequence: Sequence, thingName: string, apply: ApplyStep): Promise<void> {
  for (const [i, step] of sequence.steps.entries()) {
    const where = `${sequence.name}, step ${i + 1} (${step.op})`;
    const seen = await apply(thingName, step);
    const e = step.expect;
    if (isError(e)) {
      expect(seen.ok, `${where}: expected rejection ${e.code}`).toBe(false);
      expect(seen.body.code, where).toBe(e.code);
      expect(seen.body.message, where).toBe(e.message);
      continue;
    }
    expect(seen.ok, `${where}: ${JSON.stringify(seen.body)}`).toBe(true);
    expect(seen.body.version, where).toBe(e.version);
    expect(typeof seen.body.timestamp, where).toBe('number');
    if (step.op === 'update' && 'delta' in e) {
      const requestState = step.request.state as JsonObject | null;
      if (requestState === null) {
        // `"state": null` is echoed as null, with no metadata (nothing was written to stamp).
        expect(seen.body.state, where).toBeNull();
        expect(Object.hasOwn(seen.body, 'metadata'), `${where}: no metadata`).toBe(false);
      } else {
        expect(seen.body.state, where).toEqual(requestState);
        expect(metadataShape(seen.body.metadata), where).toEqual(expectedMetadataShape(requestState));
      }
      if (step.request.clientToken !== undefined) expect(seen.body.clientToken, where).toBe(step.request.clientToken);
      if (seen.delta !== undefined) {
        expect(seen.delta === null ? null : seen.delta.state, `${where}: delta`).toEqual(e.delta);
        if (seen.delta !== null) expect(seen.delta.version, `${where}: delta version`).toBe(e.version);
      }
      if (seen.documents !== undefined) {
        const current = seen.documents.current as JsonObject;
        expect(current.version, `${where}: documents`).toBe(e.version);
        if (e.created === true) expect(seen.documents.previous, `${where}: documents`).toBeNull();
        if (e.created === false) expect((seen.documents.previous as JsonObject).version, where).toBe(e.version - 1);
        if (e.currentState !== undefined) expect(current.state, `${where}: documents current`).toEqual(e.currentState);
      }
    }
    if (step.op === 'get' && 'state' in e) {
      expect(seen.body.state, where).toEqual(e.state);
      if (e.metadataShape !== undefined) expect(metadataShape(seen.body.metadata), where).toEqual(e.metadataShape);
    }
  }
}

const ts = { timestamp: T };

export const SEQUENCES: readonly Sequence[] = [
  {
    // "Simulating Device Shadow service communications": the smart lamp, app and device.
    name: 'smart lamp: device reports, app sets a colour, device follows',
    steps: [
      { op: 'get', expect: { code: 404, message: "No shadow exists with name: '{thing}'" } },
      {
        op: 'update',
        request: {
          state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
          clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
        },
        expect: { version: 1, delta: null, created: true },
      },
      {
        op: 'get',
        expect: {
          version: 1,
          state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
          metadataShape: { reported: { ID: ts, ColorRGB: [ts, ts, ts] } },
        },
      },
      {
        op: 'update',
        request: {
          state: { desired: { ColorRGB: [255, 255, 0] } },
          clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
        },
        expect: { version: 2, delta: { ColorRGB: [255, 255, 0] }, created: false },
      },
      {
        op: 'get',
        expect: {
          version: 2,
          state: {
            desired: { ColorRGB: [255, 255, 0] },
            reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] },
            delta: { ColorRGB: [255, 255, 0] },
          },
          metadataShape: {
            desired: { ColorRGB: [ts, ts, ts] },
            reported: { ID: ts, ColorRGB: [ts, ts, ts] },
            delta: { ColorRGB: [ts, ts, ts] },
          },
        },
      },
      {
        op: 'update',
        request: {
          state: { reported: { ColorRGB: [255, 255, 0] } },
          clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
        },
        expect: { version: 3, delta: null, created: false },
      },
      {
        op: 'get',
        expect: {
          version: 3,
          state: { desired: { ColorRGB: [255, 255, 0] }, reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] } },
        },
      },
    ],
  },
  {
    // "Delta state": fields only in desired are in the delta; fields only in reported are not.
    name: 'delta of flat desired and reported',
    steps: [
      {
        op: 'update',
        request: { state: { reported: { color: 'GREEN', engine: 'ON' } } },
        expect: { version: 1, delta: null },
      },
      {
        op: 'update',
        request: { state: { desired: { color: 'RED', state: 'STOP' } } },
        expect: { version: 2, delta: { color: 'RED', state: 'STOP' } },
      },
      {
        op: 'get',
        expect: {
          version: 2,
          state: {
            desired: { color: 'RED', state: 'STOP' },
            reported: { color: 'GREEN', engine: 'ON' },
            delta: { color: 'RED', state: 'STOP' },
          },
          metadataShape: {
            desired: { color: ts, state: ts },
            reported: { color: ts, engine: ts },
            delta: { color: ts, state: ts },
          },
        },
      },
    ],
  },
  {
    // "Delta state": when nested objects differ, the delta contains the path to the root.
    name: 'nested delta keeps the path to the changed leaf',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { lights: { color: { r: 255, g: 255, b: 255 } } } } },
        expect: { version: 1, delta: { lights: { color: { r: 255, g: 255, b: 255 } } } },
      },
      {
        op: 'update',
        request: { state: { reported: { lights: { color: { r: 255, g: 0, b: 255 } } } } },
        expect: { version: 2, delta: { lights: { color: { g: 255 } } } },
      },
      {
        op: 'get',
        expect: {
          version: 2,
          state: {
            desired: { lights: { color: { r: 255, g: 255, b: 255 } } },
            reported: { lights: { color: { r: 255, g: 0, b: 255 } } },
            delta: { lights: { color: { g: 255 } } },
          },
          metadataShape: {
            desired: { lights: { color: { r: ts, g: ts, b: ts } } },
            reported: { lights: { color: { r: ts, g: ts, b: ts } } },
            delta: { lights: { color: { g: ts } } },
          },
        },
      },
      {
        op: 'update',
        request: { state: { reported: { lights: { color: { g: 255 } } } } },
        expect: { version: 3, delta: null },
      },
    ],
  },
  {
    // "Array values in shadow documents" and "Delta state": arrays are values, replaced and compared whole.
    name: 'arrays are replaced and compared whole',
    steps: [
      {
        op: 'update',
        request: {
          state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] }, reported: { colors: ['RED', 'GREEN', 'BLUE'] } },
        },
        expect: { version: 1, delta: null },
      },
      {
        op: 'update',
        request: { state: { desired: { colors: ['RED'] } } },
        expect: { version: 2, delta: { colors: ['RED'] } },
      },
      {
        op: 'get',
        expect: {
          version: 2,
          state: {
            desired: { colors: ['RED'] },
            reported: { colors: ['RED', 'GREEN', 'BLUE'] },
            delta: { colors: ['RED'] },
          },
          metadataShape: { desired: { colors: [ts] }, reported: { colors: [ts, ts, ts] }, delta: { colors: [ts] } },
        },
      },
    ],
  },
  {
    // "Optimistic locking": a request with a stale version is rejected with 409, the right one is accepted.
    name: 'optimistic locking with version',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] } } },
        expect: { version: 1, delta: { colors: ['RED', 'GREEN', 'BLUE'] } },
      },
      {
        op: 'update',
        request: { state: { desired: { colors: ['BLUE'] } }, version: 0, clientToken: 'stale' },
        expect: { code: 409, message: 'Version conflict' },
      },
      {
        op: 'update',
        request: { state: { desired: { colors: ['BLUE'] } }, version: 1 },
        expect: { version: 2, delta: { colors: ['BLUE'] } },
      },
      { op: 'get', expect: { version: 2, state: { desired: { colors: ['BLUE'] }, delta: { colors: ['BLUE'] } } } },
    ],
  },
  {
    // "Deleting a property from a shadow document": null removes the key.
    name: 'null deletes a property',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { color: { r: 10 }, engine: 'ON' } } },
        expect: { version: 1, delta: { color: { r: 10 }, engine: 'ON' } },
      },
      {
        op: 'update',
        request: { state: { desired: { engine: null } } },
        expect: { version: 2, delta: { color: { r: 10 } } },
      },
      {
        op: 'get',
        expect: {
          version: 2,
          state: { desired: { color: { r: 10 } }, delta: { color: { r: 10 } } },
          metadataShape: { desired: { color: { r: ts } }, delta: { color: { r: ts } } },
        },
      },
    ],
  },
  {
    // "Empty shadow document properties": "desired": null removes the section.
    name: 'desired null removes the section',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { color: 'red' } } },
        expect: { version: 1, delta: { color: 'red' } },
      },
      {
        op: 'update',
        request: { state: { reported: { color: 'red' }, desired: null } },
        expect: { version: 2, delta: null },
      },
      {
        op: 'get',
        expect: { version: 2, state: { reported: { color: 'red' } }, metadataShape: { reported: { color: ts } } },
      },
    ],
  },
  {
    // "Message order": every accepted change with a non-empty delta publishes the whole current delta.
    name: 'message order: two desired changes then the device catches up',
    steps: [
      { op: 'update', request: { state: { reported: { color: 'blue' } } }, expect: { version: 1, delta: null } },
      {
        op: 'update',
        request: { state: { desired: { color: 'RED' } } },
        expect: { version: 2, delta: { color: 'RED' } },
      },
      {
        op: 'update',
        request: { state: { desired: { color: 'GREEN' } } },
        expect: { version: 3, delta: { color: 'GREEN' } },
      },
      { op: 'update', request: { state: { reported: { color: 'GREEN' } } }, expect: { version: 4, delta: null } },
      { op: 'get', expect: { version: 4, state: { desired: { color: 'GREEN' }, reported: { color: 'GREEN' } } } },
    ],
  },
  {
    // "/update/delta" message body rules.
    name: 'delta rules: reported-only keys never, deleted reported keys again',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { mode: 'auto' }, reported: { mode: 'auto', temperature: 21 } } },
        expect: { version: 1, delta: null },
      },
      { op: 'update', request: { state: { reported: { temperature: 22 } } }, expect: { version: 2, delta: null } },
      {
        op: 'update',
        request: { state: { reported: { mode: null } } },
        expect: { version: 3, delta: { mode: 'auto' } },
      },
      {
        op: 'update',
        request: { state: { desired: { interval: 5 } } },
        expect: { version: 4, delta: { mode: 'auto', interval: 5 } },
      },
    ],
  },
  {
    // "Deleting a shadow": the version is not reset; a new document follows the deleted one.
    name: 'delete then recreate keeps counting versions',
    steps: [
      {
        op: 'update',
        request: { state: { reported: { on: true } } },
        expect: { version: 1, delta: null, created: true },
      },
      {
        op: 'update',
        request: { state: { reported: { on: false } } },
        expect: { version: 2, delta: null, created: false },
      },
      { op: 'delete', expect: { version: 2 } },
      { op: 'get', expect: { code: 404, message: "No shadow exists with name: '{thing}'" } },
      { op: 'delete', expect: { code: 404, message: "No shadow exists with name: '{thing}'" } },
      {
        op: 'update',
        request: { state: { desired: { on: true } } },
        expect: { version: 3, delta: { on: true }, created: true },
      },
      { op: 'get', expect: { version: 3, state: { desired: { on: true }, delta: { on: true } } } },
    ],
  },
  {
    // Named and classic shadows of one thing are separate documents with their own versions.
    name: 'named and classic shadows are independent',
    steps: [
      {
        op: 'get',
        shadowName: 'simShadow1',
        expect: { code: 404, message: "No shadow exists with name: 'simShadow1'" },
      },
      {
        op: 'update',
        shadowName: 'simShadow1',
        request: { state: { reported: { ID: 'SmartLamp21' } } },
        expect: { version: 1, delta: null, created: true },
      },
      {
        op: 'update',
        shadowName: 'simShadow1',
        request: { state: { desired: { ID: 'SmartLamp22' } } },
        expect: { version: 2, delta: { ID: 'SmartLamp22' } },
      },
      { op: 'get', expect: { code: 404, message: "No shadow exists with name: '{thing}'" } },
      { op: 'update', request: { state: { reported: { x: 1 } } }, expect: { version: 1, delta: null, created: true } },
      {
        op: 'get',
        shadowName: 'simShadow1',
        expect: {
          version: 2,
          state: { desired: { ID: 'SmartLamp22' }, reported: { ID: 'SmartLamp21' }, delta: { ID: 'SmartLamp22' } },
        },
      },
      { op: 'delete', shadowName: 'simShadow1', expect: { version: 2 } },
      { op: 'get', expect: { version: 1, state: { reported: { x: 1 } } } },
    ],
  },
  {
    // "Setting the device's shadow state to null does not delete the shadow."
    name: 'state null empties the shadow but keeps it',
    steps: [
      {
        op: 'update',
        request: { state: { desired: { a: 1 }, reported: { b: 2 } } },
        expect: { version: 1, delta: { a: 1 } },
      },
      {
        op: 'update',
        request: { state: null, clientToken: 'clear-all' },
        expect: { version: 2, delta: null, created: false, currentState: {} },
      },
      { op: 'get', expect: { version: 2, state: {}, metadataShape: {} } },
      // What comes next starts from nothing: the cleared keys do not come back.
      {
        op: 'update',
        request: { state: { reported: { c: 3 } } },
        expect: { version: 3, delta: null, created: false, currentState: { reported: { c: 3 } } },
      },
      { op: 'get', expect: { version: 3, state: { reported: { c: 3 } }, metadataShape: { reported: { c: ts } } } },
    ],
  },
];

/** Sequences refer to the classic shadow's 404 message as `'{thing}'`; this fills in the thing name. */
export function bindThing(sequence: Sequence, thingName: string): Sequence {
  const fill = (m: string) => m.replace('{thing}', thingName);
  return {
    name: sequence.name,
    steps: sequence.steps.map((step) =>
      'code' in step.expect
        ? ({ ...step, expect: { ...step.expect, message: fill(step.expect.message) } } as SequenceStep)
        : step,
    ),
  };
}
