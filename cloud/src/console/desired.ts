import { type JsonObject, parseJson, validateDesiredState } from '@pifleet/protocol';
import { isJsonObject, jsonEqual } from '../core/shadow/json.js';
import type { ApiResponse } from '../http/server.js';
import type { Logger } from '../logger.js';
import type { ConsoleBackend } from './backend.js';
import type { ThingCatalog } from './catalog.js';
import { json } from './wire.js';

/**
 * The console's one write: an operator's desired state for a thing, `{desired, expected?}`, checked
 * against the desired-state schema and written to the classic shadow with optimistic concurrency
 * on the desired section the form was built from.
 */

export interface SetDesiredDeps {
  readonly catalog: Pick<ThingCatalog, 'readShadow'>;
  readonly backend: Pick<ConsoleBackend, 'writeDesired'>;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly log: Logger;
}

const CONFLICT_RETRIES = 3;

export async function setDesired(deps: SetDesiredDeps, thingName: string, body: Buffer): Promise<ApiResponse> {
  const { catalog, backend, now, log } = deps;
  const parsed = parseJson(body.toString('utf8'));
  if (!parsed.ok) {
    // Why it was refused (not JSON, or nested past the bound), as the command API says it.
    return json(400, { message: `The body is not valid JSON: ${parsed.message}.`, issues: [] });
  }
  const input = parsed.value;
  if (!isJsonObject(input)) {
    return json(400, { message: 'The body must be a JSON object {desired, expected?}.', issues: [] });
  }
  const checked = validateDesiredState(input.desired);
  if (!checked.ok) return json(400, { message: 'The desired state is not valid.', issues: checked.issues });
  const desired = input.desired as JsonObject;
  const expected = isJsonObject(input.expected) ? input.expected : undefined;
  const expectedVersion = typeof expected?.version === 'number' ? expected.version : undefined;
  const expectedDesired = expected && 'desired' in expected ? (expected.desired ?? {}) : undefined;

  for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
    const current = await catalog.readShadow(thingName);
    const version = typeof current?.version === 'number' ? current.version : undefined;
    const currentState = isJsonObject(current?.state) ? current.state : {};
    const currentDesired = isJsonObject(currentState.desired) ? currentState.desired : {};
    // Optimistic concurrency on what the form was built from: the desired section. Reported
    // updates from the device bump the version all the time and are not a conflict.
    if (
      expectedVersion !== undefined &&
      version !== expectedVersion &&
      (expectedDesired === undefined || !jsonEqual(currentDesired, expectedDesired))
    ) {
      return json(409, {
        message: `The desired state changed since version ${expectedVersion} (now version ${version ?? 'none'}).`,
        version: version ?? null,
        desired: currentDesired,
      });
    }
    const result = await backend.writeDesired(thingName, {
      desired,
      clientToken: `console-${now()}`,
      ...(version === undefined ? {} : { version }),
    });
    if ('version' in result) {
      log.info({ thingName, version: result.version }, 'desired state set from the console');
      return json(200, { version: result.version ?? null, desired, at: now() });
    }
    if (result.status !== 409) return json(result.status, { message: result.message, issues: [] });
    // A report landed between the read and the write: read again.
  }
  return json(409, { message: 'The shadow kept changing; try again.', version: null, desired: null });
}
