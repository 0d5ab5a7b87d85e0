import { z } from 'zod';
import { parseTargetSettings, type S3Location, type TargetConfig } from '../../config';
import { bool, httpUrl, secretRef, text, wholeNumber, type SchemaContext } from '../../config/fields';
import { LifeboatError } from '../../errors';
import { compileGlob } from './select';

export interface BucketSettings extends S3Location {
  /** '' (the whole bucket) or a key prefix ending in '/'. */
  prefix: string;
  /** rclone-style globs, matched against keys relative to `prefix`. */
  exclude: string[];
  /** Skip every object under a folder that holds a `deletion-mark.json` (rclone's `--exclude-if-present`). */
  excludeDeletionMarked: boolean;
  /** File names written last on restore (and copied last on backup), e.g. `meta.json`. */
  completionMarkers: string[];
  /** Objects copied at once. */
  concurrency: number;
  /** Folder (below `prefix`) where the drill writes its markers. */
  drillPrefix: string;
}

/** S3's bucket naming rules (the strict, DNS-compatible ones). */
const BUCKET = /^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function validBucketName(what: string, name: string): string {
  if (!BUCKET.test(name)) {
    throw new LifeboatError(
      'InvalidName',
      `${what} ${JSON.stringify(name.slice(0, 80))} is not a valid S3 bucket name: use 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit`,
    );
  }
  return name;
}

/** '' or 'a/b/': no leading slash, no empty or '..' segments. */
const folder = () =>
  z
    .string({ error: 'must be a key prefix like a/b/' })
    .transform((raw) => raw.replace(/^\/+|\/+$/g, ''))
    .refine((v) => v === '' || v.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), "must be a key prefix like 'a/b/' without empty, '.' or '..' parts")
    .transform((v) => (v === '' ? '' : `${v}/`));

/** A bucket target's settings (docs/bucket.md). */
export const bucketSettings = (c: SchemaContext) => ({
  endpoint: httpUrl().optional().meta({ description: 'S3 endpoint URL; omit for AWS' }),
  region: text().default('us-east-1'),
  bucket: text().refine((b) => BUCKET.test(b), 'is not a valid S3 bucket name: use 3-63 lowercase letters, digits, dots or dashes'),
  prefix: folder().default('').meta({ description: "'' (the whole bucket) or a key prefix ending in '/'" }),
  forcePathStyle: bool().optional(),
  accessKeyId: secretRef(c).optional(),
  secretAccessKey: secretRef(c).optional(),
  exclude: z
    .array(text().superRefine((g, ctx) => {
      try {
        compileGlob(g);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }))
    .default([])
    .meta({ description: 'rclone-style globs, matched against keys relative to prefix' }),
  excludeDeletionMarked: bool().default(false).meta({ description: "skip every folder holding a deletion-mark.json (rclone's --exclude-if-present)" }),
  completionMarkers: z
    .array(text().refine((m) => !m.includes('/'), 'must be a file name (like meta.json), not a path'))
    .default(['meta.json'])
    .meta({ description: 'file names written last on restore (and copied last on backup)' }),
  concurrency: wholeNumber(1, 256).default(16),
  drillPrefix: folder()
    .refine((v) => v !== '', "must name a folder of its own (like 'lifeboat-drill/'): the drill writes and cleans up its markers there")
    .default('lifeboat-drill/')
    .meta({ description: 'folder below prefix where the drill writes its markers; point it away from live data (a reader such as Mimir takes every top-level folder as a tenant)' }),
});

export function parseBucketSettings(file: string, t: Pick<TargetConfig, 'name' | 'settings'>): BucketSettings {
  const s = parseTargetSettings(file, t, bucketSettings);
  if (!s.accessKeyId !== !s.secretAccessKey) {
    throw new LifeboatError(
      'ConfigError',
      `config ${file}: 'targets.${t.name}.accessKeyId' and 'targets.${t.name}.secretAccessKey' go together: give both, or neither to use the SDK's default credentials`,
    );
  }
  return {
    endpoint: s.endpoint,
    region: s.region,
    bucket: s.bucket,
    prefix: s.prefix,
    forcePathStyle: s.forcePathStyle ?? Boolean(s.endpoint),
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
    exclude: s.exclude,
    excludeDeletionMarked: s.excludeDeletionMarked,
    completionMarkers: s.completionMarkers,
    concurrency: s.concurrency,
    drillPrefix: s.drillPrefix,
  };
}
