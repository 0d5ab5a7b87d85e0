import { int, secretRef, str, type S3Location, type TargetConfig } from '../../config';
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
function folder(file: string, field: string, v: unknown, fallback: string): string {
  const raw = str(file, field, v, fallback === '' ? '/' : fallback);
  const trimmed = raw.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  if (trimmed.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new LifeboatError('ConfigError', `config ${file}: '${field}' must be a key prefix like 'a/b/' without empty, '.' or '..' parts`);
  }
  return `${trimmed}/`;
}

function strings(file: string, field: string, v: unknown, fallback: string[]): string[] {
  if (v === undefined) return fallback;
  if (!Array.isArray(v)) throw new LifeboatError('ConfigError', `config ${file}: '${field}' must be a list of strings`);
  return v.map((s, i) => str(file, `${field}[${i}]`, s));
}

export function parseBucketSettings(file: string, t: TargetConfig): BucketSettings {
  const s = t.settings;
  const f = (k: string) => `targets.${t.name}.${k}`;
  const endpoint = s.endpoint === undefined ? undefined : str(file, f('endpoint'), s.endpoint).replace(/\/+$/, '');
  const exclude = strings(file, f('exclude'), s.exclude, []);
  for (const [i, g] of exclude.entries()) {
    try {
      compileGlob(g);
    } catch (err) {
      throw new LifeboatError('ConfigError', `config ${file}: '${f(`exclude[${i}]`)}' ${(err as Error).message}`);
    }
  }
  const completionMarkers = strings(file, f('completionMarkers'), s.completionMarkers, ['meta.json']);
  if (completionMarkers.some((m) => m.includes('/'))) {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('completionMarkers')}' lists file names (like meta.json), not paths`);
  }
  if (s.excludeDeletionMarked !== undefined && typeof s.excludeDeletionMarked !== 'boolean') {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('excludeDeletionMarked')}' must be true or false`);
  }
  const accessKeyId = secretRef(file, f('accessKeyId'), s.accessKeyId);
  const secretAccessKey = secretRef(file, f('secretAccessKey'), s.secretAccessKey);
  if (!accessKeyId !== !secretAccessKey) {
    throw new LifeboatError('ConfigError', `config ${file}: '${f('accessKeyId')}' and '${f('secretAccessKey')}' go together: give both, or neither to use the SDK's default credentials`);
  }
  return {
    endpoint,
    region: str(file, f('region'), s.region, 'us-east-1'),
    bucket: validBucketName(f('bucket'), str(file, f('bucket'), s.bucket)),
    prefix: folder(file, f('prefix'), s.prefix, ''),
    forcePathStyle: s.forcePathStyle === undefined ? Boolean(endpoint) : s.forcePathStyle === true,
    accessKeyId,
    secretAccessKey,
    exclude,
    excludeDeletionMarked: s.excludeDeletionMarked === true,
    completionMarkers,
    concurrency: Math.min(int(file, f('concurrency'), s.concurrency, 16), 256),
    drillPrefix: folder(file, f('drillPrefix'), s.drillPrefix, 'lifeboat-drill/'),
  };
}
