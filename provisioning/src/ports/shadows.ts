import type { JsonObject } from '@pifleet/protocol';

/** The Device Shadow operations of the IoT data plane the CLI uses. */
export interface ShadowClient {
  /** The shadow document, or undefined when the thing has no such shadow. */
  get(thingName: string, shadowName?: string): Promise<JsonObject | undefined>;
  /** Sends an update request document and returns the accepted response. */
  update(thingName: string, request: JsonObject, shadowName?: string): Promise<JsonObject>;
}
