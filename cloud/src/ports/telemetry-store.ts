import type { MetricValue, TelemetryBatch } from '@pifleet/protocol';

/**
 * The port between the cloud handlers (ingest, query, presence) and telemetry storage.
 * Adapters: SQLite for the local IoT Core (`adapters/sqlite-telemetry-store.ts`) and DynamoDB
 * for AWS (`adapters/dynamodb-telemetry-store.ts`). Both pass `describeTelemetryStore`
 * (`testing/telemetry-store-suite.ts`), so whatever this file promises holds for both.
 */

/** One reading as stored: one element of a batch's `readings`, with the batch it came in. */
export interface StoredReading {
  readonly thingName: string;
  readonly sensor: string;
  /** Sample time, ms since the epoch. */
  readonly ts: number;
  /** Metric name → value. With a `metric` filter, only that metric. */
  readonly metrics: Readonly<Record<string, MetricValue>>;
  readonly bootId: string;
  readonly seq: number;
  /** Position of the reading in its batch's `readings`. */
  readonly index: number;
}

export interface PutBatchResult {
  /** Readings written by this call (0 for a duplicate). */
  readonly stored: number;
  /** True when the batch `(thingName, bootId, seq)` had been stored before; nothing was written twice. */
  readonly duplicate: boolean;
}

export interface TelemetryQuery {
  readonly thingName: string;
  /** Inclusive lower bound on the reading time, ms since the epoch. */
  readonly from: number;
  /** Inclusive upper bound on the reading time, ms since the epoch. */
  readonly to: number;
  /** Only readings of this sensor. */
  readonly sensor?: string;
  /** Only readings that carry this metric; each item then holds only that metric. */
  readonly metric?: string;
  /** Page size, 1 – {@link MAX_QUERY_LIMIT}. */
  readonly limit: number;
  /** Opaque token from a previous page of the same query. */
  readonly nextToken?: string;
}

export const MAX_QUERY_LIMIT = 1000;

export interface TelemetryPage {
  /** Ordered by time, then sensor, bootId, seq and index (a total order, stable across pages). */
  readonly items: readonly StoredReading[];
  /** Present when more items may follow; pass it back as `nextToken` with the same query. */
  readonly nextToken?: string;
}

/** The newest value of one metric of one sensor of a thing. */
export interface LatestValue {
  readonly sensor: string;
  readonly metric: string;
  readonly value: MetricValue;
  /** Time of the reading the value came from. */
  readonly ts: number;
}

/**
 * A thing's connectivity as IoT Core's presence events report it
 * (`$aws/events/presence/{connected|disconnected}/{clientId}`).
 */
export interface ConnectivityRecord {
  readonly thingName: string;
  readonly connected: boolean;
  readonly clientId: string;
  /** Time of the event (IoT Core's `timestamp`), ms since the epoch. */
  readonly timestamp: number;
  readonly eventType: 'connected' | 'disconnected';
  /** IoT's `versionNumber`: orders events of one client id that share a timestamp. */
  readonly versionNumber?: number;
  readonly sessionIdentifier?: string;
  readonly principalIdentifier?: string;
  readonly ipAddress?: string;
  /** On disconnect, IoT's reason, for example `CLIENT_INITIATED_DISCONNECT` or `MQTT_KEEP_ALIVE_TIMEOUT`. */
  readonly disconnectReason?: string;
  readonly clientInitiatedDisconnect?: boolean;
}

/** One page of the fleet's connectivity records ({@link TelemetryStore.listConnectivity}). */
export interface ConnectivityListing {
  /** Page size, 1 – {@link MAX_QUERY_LIMIT}. */
  readonly limit: number;
  /** Opaque token from the previous page. */
  readonly nextToken?: string;
}

export interface ConnectivityPage {
  /** Ordered by thing name (byte order), a stable order across pages. */
  readonly items: readonly ConnectivityRecord[];
  /** Present when more records may follow; pass it back as `nextToken`. */
  readonly nextToken?: string;
}

export interface PutConnectivityResult {
  /** False when the store already held a newer event for the thing (events can arrive out of order). */
  readonly applied: boolean;
}

export interface TelemetryStore {
  /**
   * Stores every reading of a valid batch. Idempotent on `(thingName, bootId, seq)`: a batch
   * stored before is reported as a duplicate and nothing is written twice, including when an
   * earlier call failed half way (the retry completes it). Throws a `TelemetryStoreError` when
   * the backend fails; calling again with the same batch is then safe.
   */
  putBatch(batch: TelemetryBatch): Promise<PutBatchResult>;
  /** One page of a thing's readings in a time range. Throws `InvalidPageTokenError` for a bad token. */
  query(query: TelemetryQuery): Promise<TelemetryPage>;
  /** The newest value of every metric of every sensor of a thing, ordered by sensor then metric. */
  latest(thingName: string): Promise<readonly LatestValue[]>;
  /** Records a presence event unless the store already holds a newer one for the thing. */
  putConnectivity(record: ConnectivityRecord): Promise<PutConnectivityResult>;
  getConnectivity(thingName: string): Promise<ConnectivityRecord | undefined>;
  /**
   * One page of every thing's connectivity record (things with no presence event yet are not
   * listed). Throws `InvalidTelemetryQueryError` for a bad limit, `InvalidPageTokenError` for a
   * token this listing did not issue.
   */
  listConnectivity(listing: ConnectivityListing): Promise<ConnectivityPage>;
  /** Readings stored for one thing, or for all things (for load tests reading back what arrived). */
  countReadings(thingName?: string): Promise<number>;
}

/** Lifecycle of a store adapter: `start()` opens (does I/O), `stop()` releases. */
export interface ManagedTelemetryStore extends TelemetryStore {
  start(): Promise<void>;
  stop(): Promise<void>;
}
