import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RawRequestHandler, RequestHead, RouteGroup } from '../http/server.js';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { ArtifactError } from './errors.js';
import { type S3AuthOptions, type S3Principal, SERVICE, signingServiceOf, verifyS3Request } from './s3-auth.js';
import type { ArtifactStore, ByteRange, ChecksumAlgorithm, ObjectInfo, PutOptions } from './store.js';

/**
 * The S3 subset on the core's HTTP listener, path-style (`/<bucket>/<key>`): PutObject, GetObject,
 * HeadObject, DeleteObject, CreateBucket and HeadBucket, wire-compatible with `@aws-sdk/client-s3`
 * (`forcePathStyle: true`, `endpoint` = the core's URL). A request is S3's when it is signed for
 * the `s3` service (header or presigned query), as AWS tells S3 apart by its host name; so S3's
 * paths never shadow the other APIs' routes, and a bucket may be named like one of them. The group
 * takes requests over before the server reads their bodies: objects stream to disk, past the
 * server's 1 MiB body limit; errors are S3's XML (`<Error><Code>…`), which the client raises as
 * its classes (`NoSuchKey`, `NotFound` for a HEAD, …).
 */

export interface S3RoutesDeps {
  readonly store: ArtifactStore;
  readonly auth: S3AuthOptions;
}

const CHECKSUM_HEADERS: ReadonlyArray<readonly [string, ChecksumAlgorithm]> = [
  ['x-amz-checksum-crc32', 'CRC32'],
  ['x-amz-checksum-sha1', 'SHA1'],
  ['x-amz-checksum-sha256', 'SHA256'],
];
const UNSUPPORTED_CHECKSUMS = ['x-amz-checksum-crc32c', 'x-amz-checksum-crc64nvme'];

const xmlEscape = (text: string) =>
  text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string,
  );

function single(headers: RequestHead['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parsePath(rawPath: string): { bucket: string; key: string | undefined } {
  const slash = rawPath.indexOf('/', 1);
  try {
    const bucket = decodeURIComponent(slash === -1 ? rawPath.slice(1) : rawPath.slice(1, slash));
    const rest = slash === -1 ? '' : rawPath.slice(slash + 1);
    return { bucket, key: rest === '' ? undefined : decodeURIComponent(rest) };
  } catch {
    throw new ArtifactError('InvalidArgument', 'The path is not validly percent-encoded.');
  }
}

/** A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; anything else is ignored (the whole object), as S3 does. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw invalidRange(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size) throw invalidRange(size);
  return { start, end };
}

const invalidRange = (size: number) =>
  new ArtifactError('InvalidRange', 'The requested range is not satisfiable', {
    fields: { ActualObjectSize: String(size) },
  });

function objectHeaders(info: ObjectInfo): Record<string, string> {
  return {
    etag: info.etag,
    'last-modified': new Date(info.lastModified).toUTCString(),
    'content-type': info.contentType,
    'accept-ranges': 'bytes',
  };
}

function checksumHeader(info: ObjectInfo): Record<string, string> {
  return info.checksum ? { [`x-amz-checksum-${info.checksum.algorithm.toLowerCase()}`]: info.checksum.value } : {};
}

export function s3Routes(deps: S3RoutesDeps): RouteGroup {
  const { store } = deps;

  function sendError(res: ServerResponse, head: RequestHead, err: ArtifactError, hasBody: boolean): void {
    const fields = Object.entries(err.fields)
      .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
      .join('');
    const body =
      head.method === 'HEAD'
        ? ''
        : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.s3Code}</Code><Message>${xmlEscape(err.message)}</Message>${fields}<RequestId>${head.requestId}</RequestId></Error>`;
    const headers: Record<string, string> = {
      'x-amz-request-id': head.requestId,
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(body)),
    };
    // A body left unread cannot be followed by another request on this connection.
    if (hasBody) headers.connection = 'close';
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(err.status, headers);
    res.end(body);
  }

  async function putObject(
    req: IncomingMessage,
    res: ServerResponse,
    head: RequestHead,
    principal: S3Principal,
    bucket: string,
    key: string,
  ) {
    const h = head.headers;
    const unsupported = UNSUPPORTED_CHECKSUMS.find(
      (name) => h[name] !== undefined || single(h, 'x-amz-trailer') === name,
    );
    if (unsupported !== undefined) {
      throw new ArtifactError(
        'NotImplemented',
        `The local artifact store does not verify ${unsupported}; use CRC32, SHA1 or SHA256.`,
      );
    }
    let body: Readable = req;
    let trailers: Map<string, string> | undefined;
    let declaredLength: number | undefined;
    const contentLength = single(h, 'content-length');
    if (principal.payload.kind === 'streaming-trailer') {
      const encoding = single(h, 'content-encoding') ?? '';
      if (
        !encoding
          .split(',')
          .map((e) => e.trim())
          .includes('aws-chunked')
      ) {
        throw new ArtifactError('InvalidArgument', 'A streaming payload needs Content-Encoding: aws-chunked.');
      }
      const decoded = single(h, 'x-amz-decoded-content-length');
      if (decoded === undefined || !/^\d+$/.test(decoded)) {
        throw new ArtifactError(
          'MissingContentLength',
          'You must provide the x-amz-decoded-content-length HTTP header.',
        );
      }
      declaredLength = Number(decoded);
      const decoder = new AwsChunkedDecoder();
      trailers = decoder.trailers;
      req.on('error', (err) => decoder.destroy(err));
      body = req.pipe(decoder);
    } else if (contentLength !== undefined) {
      declaredLength = Number(contentLength);
    } else if (single(h, 'transfer-encoding') === undefined) {
      declaredLength = 0;
    } else {
      throw new ArtifactError('MissingContentLength', 'You must provide the Content-Length HTTP header.');
    }
    const declared = trailers === undefined ? undefined : single(h, 'x-amz-trailer');
    const checksumHeaderName = CHECKSUM_HEADERS.find(([name]) => h[name] !== undefined || declared === name);
    const options: PutOptions = {
      ...(single(h, 'content-type') === undefined ? {} : { contentType: single(h, 'content-type') as string }),
      ...(declaredLength === undefined ? {} : { declaredLength }),
      ...(principal.payload.kind === 'sha256' ? { sha256Hex: principal.payload.hex } : {}),
      ...(checksumHeaderName === undefined
        ? {}
        : {
            checksum: {
              algorithm: checksumHeaderName[1],
              expected: () => single(h, checksumHeaderName[0]) ?? trailers?.get(checksumHeaderName[0]),
            },
          }),
    };
    const info = await store.put(bucket, key, body, options);
    head.logger.info({ bucket, key, size: info.size }, 'object stored');
    res.writeHead(200, {
      'x-amz-request-id': head.requestId,
      etag: info.etag,
      ...checksumHeader(info),
      'content-length': '0',
    });
    res.end();
  }

  async function getObject(res: ServerResponse, head: RequestHead, bucket: string, key: string) {
    const opened = await store.get(bucket, key);
    let range: ByteRange | undefined;
    try {
      range = parseRange(single(head.headers, 'range'), opened.info.size);
    } catch (err) {
      await opened.close();
      throw err;
    }
    const { info } = opened;
    const headers: Record<string, string> = { 'x-amz-request-id': head.requestId, ...objectHeaders(info) };
    // The checksum is of the whole object: sent when asked for (client-s3 asks and verifies it).
    if (range === undefined && single(head.headers, 'x-amz-checksum-mode') === 'ENABLED') {
      Object.assign(headers, checksumHeader(info));
    }
    if (range === undefined || info.size === 0) {
      headers['content-length'] = String(info.size);
      res.writeHead(200, headers);
    } else {
      headers['content-length'] = String(range.end - range.start + 1);
      headers['content-range'] = `bytes ${range.start}-${range.end}/${info.size}`;
      res.writeHead(206, headers);
    }
    if (info.size === 0) {
      await opened.close();
      res.end();
      return;
    }
    try {
      await pipeline(opened.stream(range), res);
    } catch (err) {
      // The client went away mid-download (or the disk failed): nothing more can be said to it.
      head.logger.debug({ err, bucket, key }, 'object download ended early');
    }
  }

  async function serve(req: IncomingMessage, res: ServerResponse, head: RequestHead): Promise<void> {
    const length = single(head.headers, 'content-length');
    const hasBody = (length !== undefined && length !== '0') || single(head.headers, 'transfer-encoding') !== undefined;
    try {
      const principal = verifyS3Request(
        { method: head.method, rawPath: head.rawPath, rawQuery: head.rawQuery, rawHeaders: req.rawHeaders },
        deps.auth,
      );
      const { bucket, key } = parsePath(head.rawPath);
      if (bucket === '') throw new ArtifactError('NotImplemented', 'The local artifact store does not list buckets.');
      const readOnly = head.method === 'GET' || head.method === 'HEAD';
      if (principal.access === 'read' && !(readOnly && key !== undefined)) {
        throw new ArtifactError('AccessDenied', 'Access Denied');
      }
      if (principal.presigned && !readOnly) {
        // Presigned uploads are not part of pifleet's flow; the store accepts signed PUTs only.
        throw new ArtifactError('NotImplemented', 'The local artifact store accepts presigned GET and HEAD only.');
      }
      const log = head.logger.child({ group: 's3', principal: principal.accessKeyId });
      const scoped = { ...head, logger: log };
      if (key === undefined) {
        switch (head.method) {
          case 'PUT':
            await store.createBucket(bucket);
            res.writeHead(200, { 'x-amz-request-id': head.requestId, location: `/${bucket}`, 'content-length': '0' });
            res.end();
            return;
          case 'HEAD':
            if (!(await store.bucketExists(bucket))) {
              throw new ArtifactError('NoSuchBucket', 'The specified bucket does not exist', {
                fields: { BucketName: bucket },
              });
            }
            res.writeHead(200, { 'x-amz-request-id': head.requestId, 'content-length': '0' });
            res.end();
            return;
          default:
            throw new ArtifactError(
              'NotImplemented',
              `The local artifact store does not implement ${head.method} on a bucket.`,
            );
        }
      }
      switch (head.method) {
        case 'PUT':
          await putObject(req, res, scoped, principal, bucket, key);
          return;
        case 'GET':
          await getObject(res, scoped, bucket, key);
          return;
        case 'HEAD': {
          const info = await store.head(bucket, key);
          const headers: Record<string, string> = {
            'x-amz-request-id': head.requestId,
            ...objectHeaders(info),
            'content-length': String(info.size),
          };
          if (single(head.headers, 'x-amz-checksum-mode') === 'ENABLED') Object.assign(headers, checksumHeader(info));
          res.writeHead(200, headers);
          res.end();
          return;
        }
        case 'DELETE':
          await store.delete(bucket, key);
          log.info({ bucket, key }, 'object deleted');
          res.writeHead(204, { 'x-amz-request-id': head.requestId });
          res.end();
          return;
        default:
          throw new ArtifactError('MethodNotAllowed', 'The specified method is not allowed against this resource.', {
            fields: { Method: head.method, ResourceType: 'OBJECT' },
          });
      }
    } catch (err) {
      if (err instanceof ArtifactError) {
        head.logger.info({ code: err.s3Code, status: err.status }, 'S3 request rejected');
        sendError(res, head, err, hasBody && !req.readableEnded);
        return;
      }
      head.logger.error({ err }, 'S3 request failed');
      sendError(
        res,
        head,
        new ArtifactError('InternalError', 'We encountered an internal error. Please try again.'),
        true,
      );
    }
  }

  const raw: RawRequestHandler = {
    claims: (head) => signingServiceOf(head.headers, head.query) === SERVICE,
    serve,
  };
  return { name: 's3', signingNames: [], routes: [], raw };
}
