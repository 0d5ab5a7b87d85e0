import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { LifeboatError } from '../../errors';
import { readPortableMeta, type MetaFacts } from './meta';

/**
 * An artifact of the influxdb kind is one tar (tar-stream: as fast as GNU tar
 * here, and it lets lifeboat check every entry as it passes) of the flat
 * folder `influxd backup -portable -database <db>` wrote:
 * `<stamp>.manifest` (JSON: the meta file and every shard file with its
 * uncompressed size), `<stamp>.meta` (the meta store) and one
 * `<stamp>.s<shard>.tar.gz` per shard. Nothing else, no sub-folders: the
 * reader refuses anything that `influxd restore` would not expect.
 */
export const FORMAT = 'influxdb-portable-tar';

export interface PortableManifest {
  meta: { fileName: string; size: number };
  files: Array<{ database: string; policy: string; shardID: number; fileName: string; size: number }>;
}

export interface ShardFacts {
  file: string;
  database: string;
  policy: string;
  shardId: number;
  /** Uncompressed bytes (what the manifest records). */
  bytes: number;
  /** Files in the shard's tar (TSM and tombstone files). */
  files: number;
  /** Of which TSM files: a shard with none restores empty. */
  tsm: number;
}

export interface ArchiveFacts {
  manifest: PortableManifest;
  meta: MetaFacts;
  shards: ShardFacts[];
  /** Bytes of the files in the archive, as they land in a spool folder. */
  fileBytes: number;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const MANIFEST_CAP = 64 * 1024 * 1024;
const META_CAP = 1024 * 1024 * 1024;

type Kind = 'manifest' | 'meta' | 'shard';

function kindOf(name: string): Kind | undefined {
  if (name.endsWith('.manifest')) return 'manifest';
  if (name.endsWith('.meta')) return 'meta';
  if (/\.s\d+\.tar\.gz$/.test(name)) return 'shard';
  return undefined;
}

/** The manifest first (a reader learns what to expect), then the meta file, then the shards. */
export function packOrder(names: string[]): string[] {
  const rank = (n: string) => ['manifest', 'meta', 'shard'].indexOf(kindOf(n) ?? 'shard');
  return [...names].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Streams a tar of `names` (files of `dir`); fails if a file cannot be read. */
export function packFiles(dir: string, names: string[]): Readable {
  const pack = tar.pack();
  const feed = async () => {
    for (const name of packOrder(names)) {
      const s = await stat(join(dir, name));
      await pipeline(createReadStream(join(dir, name)), pack.entry({ name, size: s.size, mode: 0o600, mtime: s.mtime }));
    }
    pack.finalize();
  };
  feed().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
  return Readable.from(pack);
}

/** Collects a small entry (manifest, meta) in memory, up to `cap` bytes. */
function collector(cap: number, what: string): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  let n = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > cap) return cb(new Error(`${what} is larger than ${cap} bytes`));
      chunks.push(chunk);
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** Gunzips a shard file as it passes, counting its bytes and the files of the tar inside. */
type ShardRead = { bytes: number; files: number; tsm: number };

function shardReader(): { sink: Writable; done: Promise<ShardRead> } {
  const gunzip = createGunzip();
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const inner = tar.extract();
  const entries = (async () => {
    let files = 0;
    let tsm = 0;
    for await (const entry of inner) {
      files++;
      if (entry.header.name.endsWith('.tsm')) tsm++;
      for await (const chunk of entry) void chunk;
    }
    return { files, tsm };
  })();
  const piped = pipeline(gunzip, count, inner);
  const done = Promise.all([piped, entries]).then(([, e]) => ({ bytes, ...e }));
  done.catch(() => undefined); // reported through the writes and the await below
  return { sink: gunzip, done };
}

/** Writes each chunk of `source` to every sink, at the pace of the slowest, then ends them. */
async function fanOut(source: AsyncIterable<unknown>, sinks: Writable[]): Promise<void> {
  for await (const chunk of source) {
    for (const s of sinks) if (!s.write(chunk)) await once(s, 'drain');
  }
  for (const s of sinks) s.end();
  await Promise.all(sinks.map((s) => finished(s)));
}

export interface ReadOptions {
  /** The database the archive must hold (the item's name). */
  database: string;
  /** Also write every file into this (empty, private) folder. */
  dir?: string;
}

/**
 * Reads a portable-backup tar, checking as it goes, and (with `dir`) writes
 * its files: every entry is a plain file with a plain name; there is one
 * manifest and one meta file; the meta file decodes, has the size the
 * manifest gives and holds the database; every shard file is listed in the
 * manifest, for this database, gunzips to the size listed and holds a tar;
 * every listed shard file is there. Throws `ArtifactUnreadable` (permanent)
 * naming the first problem; a failing source keeps its own error.
 */
export async function readArchive(source: Readable, opts: ReadOptions): Promise<ArchiveFacts> {
  const bad = (why: string) => new LifeboatError('ArtifactUnreadable', `the influxdb portable backup of '${opts.database}' ${why}`, true);
  const extract = tar.extract();
  const fed = pipeline(source, extract);
  fed.catch(() => undefined);
  const small = new Map<string, { kind: Kind; bytes: () => Buffer }>();
  const shards = new Map<string, ShardRead>();
  let fileBytes = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (h.type !== 'file' || !FILE_NAME.test(h.name) || h.name.includes('..')) throw bad(`holds ${h.type} '${h.name.slice(0, 200)}'; a portable backup is plain files in one folder`);
      const kind = kindOf(h.name);
      if (!kind) throw bad(`holds '${h.name}', which is not a manifest, meta or shard file of a portable backup`);
      if (small.has(h.name) || shards.has(h.name)) throw bad(`holds '${h.name}' twice`);
      const sinks: Writable[] = [];
      if (opts.dir) sinks.push(createWriteStream(join(opts.dir, h.name), { flags: 'wx', mode: 0o600 }));
      if (kind === 'shard') {
        const reader = shardReader();
        sinks.push(reader.sink);
        await fanOut(entry, sinks).catch((err: unknown) => Promise.reject(zlibOrTar(err, bad, h.name)));
        shards.set(h.name, await reader.done.catch((err: unknown) => Promise.reject(zlibOrTar(err, bad, h.name))));
      } else {
        const c = collector(kind === 'manifest' ? MANIFEST_CAP : META_CAP, `'${h.name}'`);
        sinks.push(c.sink);
        await fanOut(entry, sinks);
        small.set(h.name, { kind, bytes: c.bytes });
      }
      fileBytes += h.size ?? 0;
    }
    await fed;
  } catch (err) {
    source.destroy();
    extract.destroy();
    // The source's own failure (a checksum, age authentication) explains more than a cut tar.
    const sourceErr = await fed.then(() => undefined, (e: unknown) => e);
    if (sourceErr instanceof LifeboatError) throw sourceErr;
    if (err instanceof LifeboatError) throw err;
    if ((err as NodeJS.ErrnoException).code) throw err; // the spool folder's own failure (ENOSPC, EACCES): the caller names it
    throw bad(`is not a readable tar: ${(err as Error).message}`);
  }
  return check(opts.database, [...small].map(([name, v]) => ({ name, ...v })), shards, fileBytes, bad);
}

function zlibOrTar(err: unknown, bad: Bad, name: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof LifeboatError || (e.code && !e.code.startsWith('Z_') && e.code !== 'ERR_STREAM_PREMATURE_CLOSE')) return err;
  return bad(`has a damaged shard file '${name}': ${e.message}`);
}

type Bad = (why: string) => LifeboatError;
type Small = { name: string; kind: Kind; bytes: () => Buffer };

function check(database: string, small: Small[], shards: Map<string, ShardRead>, fileBytes: number, bad: Bad): ArchiveFacts {
  const manifests = small.filter((s) => s.kind === 'manifest');
  const metas = small.filter((s) => s.kind === 'meta');
  if (manifests.length !== 1) throw bad(`has ${manifests.length} manifest files; it must have exactly one`);
  let manifest: PortableManifest;
  try {
    const m = JSON.parse(manifests[0]!.bytes().toString('utf8')) as Partial<PortableManifest> & { files?: PortableManifest['files'] | null };
    if (typeof m.meta?.fileName !== 'string' || typeof m.meta.size !== 'number' || !(m.files === null || Array.isArray(m.files))) throw new Error('it lacks meta.fileName, meta.size or files');
    // influxd writes `null` for a database without shards.
    manifest = { meta: m.meta, files: m.files ?? [] };
  } catch (err) {
    throw bad(`has a manifest '${manifests[0]!.name}' that is not a portable manifest: ${(err as Error).message}`);
  }
  const metaFile = metas.find((s) => s.name === manifest.meta.fileName);
  if (!metaFile || metas.length !== 1) throw bad(`lacks the meta file '${manifest.meta.fileName}' its manifest names${metas.length ? ` (it has ${metas.map((s) => s.name).join(', ')})` : ''}`);
  let meta: MetaFacts;
  try {
    meta = readPortableMeta(metaFile.bytes());
  } catch (err) {
    throw bad(`has a meta file '${metaFile.name}' that does not decode: ${(err as Error).message}`);
  }
  if (meta.dataBytes !== manifest.meta.size) throw bad(`has a meta store of ${meta.dataBytes} bytes, but its manifest says ${manifest.meta.size}`);
  if (!meta.databases.some((d) => d.name === database)) throw bad(`has a meta store without database '${database}' (it has ${meta.databases.map((d) => d.name).join(', ') || 'none'})`);
  const listed = new Set(manifest.files.map((f) => f.fileName));
  const stray = [...shards.keys()].find((f) => !listed.has(f));
  if (stray) throw bad(`holds shard file '${stray}', which its manifest does not list`);
  const out: ShardFacts[] = [];
  for (const f of manifest.files) {
    if (f.database !== database) throw bad(`lists shard ${f.shardID} of database '${f.database}'`);
    const got = shards.get(f.fileName);
    if (!got) throw bad(`lacks shard file '${f.fileName}' (shard ${f.shardID}, ${f.policy}) that its manifest lists`);
    if (got.bytes !== f.size) throw bad(`has shard file '${f.fileName}' of ${got.bytes} bytes uncompressed, but its manifest says ${f.size}`);
    out.push({ file: f.fileName, database: f.database, policy: f.policy, shardId: f.shardID, ...got });
  }
  return { manifest, meta, shards: out, fileBytes };
}

/** One line for `lifeboat verify`. */
export function summarize(database: string, f: ArchiveFacts): string {
  const db = f.meta.databases.find((d) => d.name === database)!;
  const policies = [...new Set(f.shards.map((s) => s.policy))];
  const bytes = f.shards.reduce((n, s) => n + s.bytes, 0);
  return (
    `influxd portable backup of '${database}': ${f.shards.length} shard${f.shards.length === 1 ? '' : 's'} (${f.shards.reduce((n, s) => n + s.files, 0)} files, ${bytes} bytes)` +
    `${policies.length ? ` in ${policies.join(', ')}` : ''}; retention policies ${db.retentionPolicies.join(', ') || 'none'} (default ${db.defaultRetentionPolicy || 'none'}), ` +
    `${db.continuousQueries.length} continuous quer${db.continuousQueries.length === 1 ? 'y' : 'ies'}; meta store of ${f.meta.dataBytes} bytes with ${f.meta.databases.length} database(s), ${f.meta.users} user(s)`
  );
}
