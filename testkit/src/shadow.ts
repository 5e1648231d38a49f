import { GetThingShadowCommand, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import type { InProcessCore } from '@pifleet/cloud';
import { UntilTimeoutError, until } from '@pifleet/protocol';

/** Shadows through the real `@aws-sdk/client-iot-data-plane`, as an operator's tools reach them. */

type WithData = Pick<InProcessCore, 'data'>;

export interface ShadowDoc {
  version: number;
  state: { desired?: Record<string, unknown>; reported?: Record<string, unknown>; delta?: Record<string, unknown> };
}

/** Sets `state.desired` (UpdateThingShadow); resolves with the accepted version. */
export async function desire(core: WithData, thingName: string, desired: Record<string, unknown>) {
  const out = await core.data.send(
    new UpdateThingShadowCommand({
      thingName,
      payload: new TextEncoder().encode(JSON.stringify({ state: { desired } })),
    }),
  );
  return JSON.parse(new TextDecoder().decode(out.payload)) as { version: number };
}

/** A section of `state.reported` (an empty object when absent). */
export function part<T>(doc: ShadowDoc, key: string): T {
  return (doc.state.reported?.[key] ?? {}) as T;
}

/** The classic shadow, or undefined when the thing has none. */
export async function getShadow(core: WithData, thingName: string): Promise<ShadowDoc | undefined> {
  try {
    const out = await core.data.send(new GetThingShadowCommand({ thingName }));
    return JSON.parse(new TextDecoder().decode(out.payload)) as ShadowDoc;
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

/** Polls the shadow through the data plane until `match` holds (bounded). */
export async function waitForShadow(
  core: WithData,
  thingName: string,
  match: (doc: ShadowDoc) => boolean,
  ms = 15_000,
): Promise<ShadowDoc> {
  let last: ShadowDoc | undefined;
  try {
    await until(
      async () => {
        last = await getShadow(core, thingName);
        return last !== undefined && match(last);
      },
      { within: ms, step: 100, what: `the shadow of ${thingName}` },
    );
  } catch (err) {
    if (!(err instanceof UntilTimeoutError)) throw err;
    throw new Error(`shadow of ${thingName} did not converge in ${ms} ms; last: ${JSON.stringify(last)}`, {
      cause: err,
    });
  }
  // until resolved: the last document read matched.
  return last as ShadowDoc;
}
