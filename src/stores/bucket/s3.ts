import {
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { resolveSecret, type SecretRef } from '../../config';
import { LifeboatError } from '../../errors';

export interface Endpoint {
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId?: SecretRef;
  secretAccessKey?: SecretRef;
}

/** The checksum headers of a CopyObject response (MinIO sends the SHA-256 there, not in the body). */
export interface CopyChecksumHeaders {
  checksumHeader?: { sha256?: string; type?: string };
}

/** One client per store: keep-alive sockets sized to the copy concurrency (the SDK's default is 50). */
export async function makeClient(e: Endpoint, what: string, sockets: number): Promise<S3Client> {
  const credentials =
    e.accessKeyId && e.secretAccessKey
      ? { accessKeyId: await resolveSecret(e.accessKeyId, `${what}.accessKeyId`), secretAccessKey: await resolveSecret(e.secretAccessKey, `${what}.secretAccessKey`) }
      : undefined;
  const client = new S3Client({
    endpoint: e.endpoint,
    region: e.region,
    forcePathStyle: e.forcePathStyle,
    credentials,
    maxAttempts: 5,
    // Pool objects carry lifeboat's own SHA-256; the SDK's extra CRC per request costs CPU on every small object.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: sockets }, httpsAgent: { keepAlive: true, maxSockets: sockets } },
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      if (context.commandName === 'CopyObjectCommand') {
        const h = (out.response as { headers?: Record<string, string> }).headers ?? {};
        (out.output as CopyChecksumHeaders).checksumHeader = { sha256: h['x-amz-checksum-sha256'], type: h['x-amz-checksum-type'] };
      }
      return out;
    },
    // Outermost, so the output is parsed already (and retries are inside).
    { step: 'initialize', name: 'lifeboatCopyChecksumHeaders' },
  );
  return client;
}

/** Where an endpoint is, comparable across configs: AWS (no endpoint) is per region. */
export function endpointId(e: Pick<Endpoint, 'endpoint' | 'region'>): string {
  return e.endpoint ? e.endpoint.replace(/\/+$/, '').toLowerCase() : `aws:${e.region}`;
}

/** S3 error codes that a retry cannot fix. */
const PERMANENT_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'NoSuchBucket',
  'InvalidBucketName',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidObjectState',
]);

export function s3Code(err: unknown): string | undefined {
  const e = err as { name?: string; Code?: string };
  return e?.Code ?? e?.name;
}

export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

export function isPermanentS3(err: unknown): boolean {
  if (err instanceof LifeboatError) return err.permanent;
  const code = s3Code(err);
  if (code !== undefined && PERMANENT_CODES.has(code)) return true;
  // A HEAD has no body, so the SDK cannot name the error: 403 is all there is.
  return httpStatus(err) === 403;
}

export function isNotFound(err: unknown): boolean {
  const code = s3Code(err);
  return code === 'NoSuchKey' || code === 'NotFound' || (httpStatus(err) === 404 && code !== 'NoSuchBucket');
}

export function isNoSuchBucket(err: unknown): boolean {
  return s3Code(err) === 'NoSuchBucket';
}

/** Names the bucket and says what to do, keeping the S3 code as the error's type. */
export function describeS3(err: unknown, where: string, target: string): unknown {
  const code = s3Code(err);
  if (err instanceof LifeboatError || code === undefined) return err;
  const status = httpStatus(err);
  const hint =
    code === 'NoSuchBucket'
      ? 'the bucket does not exist'
      : code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || status === 403
        ? `the server refused the credentials; check targets.${target}.accessKeyId and secretAccessKey`
        : undefined;
  if (!hint) return err;
  const msg = `${where}: ${code === 'Unknown' ? `HTTP ${status}` : code}: ${hint}`;
  return new LifeboatError(code === 'Unknown' ? 'AccessDenied' : code, msg, true);
}

export interface Listed {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

/** Every object under `prefix`, in key order. */
export async function listAll(client: S3Client, bucket: string, prefix: string, signal?: AbortSignal): Promise<Listed[]> {
  const out: Listed[] = [];
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
      { abortSignal: signal },
    );
    for (const o of page.Contents ?? []) {
      out.push({ key: o.Key!, size: o.Size ?? 0, etag: normEtag(o.ETag), lastModified: o.LastModified?.toISOString() ?? '' });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

export function normEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/"/g, '');
}

/** Deletes keys in batches of 1000; missing keys are not an error. */
export async function deleteKeys(client: S3Client, bucket: string, keys: string[], signal?: AbortSignal): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000).map((Key) => ({ Key }));
    const out = await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch, Quiet: true } }), { abortSignal: signal });
    if (out.Errors?.length) {
      const e = out.Errors[0]!;
      throw new LifeboatError('DeleteFailed', `could not delete s3://${bucket}/${e.Key ?? '?'}: ${e.Code} ${e.Message}`);
    }
  }
}

/** x-amz-copy-source: the bucket, then the key URL-encoded segment by segment. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}
