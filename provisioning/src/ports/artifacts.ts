/**
 * Release artifacts in an object store: Amazon S3 (the stack's artifacts bucket) or the local
 * core's S3 subset. "Not found" is a value (`undefined`/`false`); other failures throw the SDK's error.
 */

export interface StoredObject {
  readonly size: number;
  /** S3's ETag, quotes removed: the MD5 of the bytes for an object stored by one PutObject. */
  readonly etag?: string;
}

export interface ArtifactStore {
  bucketExists(bucket: string): Promise<boolean>;
  createBucket(bucket: string): Promise<void>;
  head(bucket: string, key: string): Promise<StoredObject | undefined>;
  /** Uploads a file (streamed, its size known) with one PutObject. */
  putFile(
    bucket: string,
    key: string,
    file: { path: string; size: number },
    contentType: string,
  ): Promise<StoredObject>;
  /** The region objects' URLs name (`https://s3.REGION.amazonaws.com/…`). */
  region(): Promise<string>;
}
