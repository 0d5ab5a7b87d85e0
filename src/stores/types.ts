import type { Readable } from 'node:stream';

/** What a long store operation reports; the activity layer turns it into heartbeats. */
export interface Progress {
  stage: string;
  item?: string;
  bytes?: number;
  totalBytes?: number;
  /** For kinds made of many objects (a bucket): objects done and in all. */
  objects?: number;
  totalObjects?: number;
  /** A line of context, e.g. the tail of a hook's output. */
  detail?: string;
  /** For tools that report a percentage rather than bytes (pgBackRest). */
  percent?: number;
}

export interface Logger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** The small context a store gets: no Temporal types, so stores test with plain jest. */
export interface StoreContext {
  signal: AbortSignal;
  progress(p: Progress): void;
  log: Logger;
  /**
   * The repository folder of this target (`<target>/` below the repository
   * prefix), for kinds whose backup is more than one stream (e.g. a bucket's
   * object pool). Stores that stream one artifact per item ignore it.
   */
  repository?: {
    repo: import('../repo/types').Repository;
    dir: string;
    /**
     * The config's encryption: what a store writes into the repository itself
     * is sealed to these recipients (null: `encryption: none`), and a restore
     * reads the identity file from it.
     */
    encryption?: import('../config').EncryptionConfig | null;
    /** Where the repository is, so a store can copy into it server-side when nothing needs encrypting. */
    location?: import('../config').RepositoryConfig;
    /** The backup being written (backups only), e.g. to name a per-backup sidecar. */
    backupId?: string;
    /** The config's compression: a store that writes into the repository itself (a bucket's pool) follows it. */
    compression?: import('../domain/compression').CompressionConfig;
    /** Which manifests to believe when a store reads earlier backups (e.g. the base of an incremental one). */
    trust?: import('../repo/catalog').Trust;
  };
}

export interface ProbeResult {
  serverVersion: string;
  /** Versions of the client tools used, e.g. `{ pg_dump: '15.18' }`. */
  tools: Record<string, string>;
  capabilities: string[];
}

/** One thing a target backs up into one artifact, e.g. one Postgres database. */
export interface BackupItem {
  /** Stable id inside the target, e.g. `database:app`. */
  item: string;
  /** The name it has in the store, e.g. `app`. */
  name: string;
  /** Artifact file name before encryption, e.g. `app.dump`. */
  file: string;
  /** Plaintext format, e.g. `pg_dump-custom`. */
  format: string;
  /** Facts the store records at backup time and needs at restore time (kept in the manifest). */
  meta?: Record<string, unknown>;
  /** About how many plaintext bytes the backup of this item streams (e.g. the database's size): the progress bar's total. */
  estimatedBytes?: number;
  /** The store's stream is compressed already (a gzip'd snapshot): the pipeline does not compress it again. */
  compressed?: boolean;
}

export interface RestoreOptions {
  /** Restore only the objects under this folder (bucket targets), e.g. one tenant's `tenant-a/`; always ends in '/'. */
  subPrefix?: string;
  /** The role that owns what is restored (postgres), instead of the owners in the backup. */
  owner?: string;
  /**
   * `into` must not exist yet: it is created and nothing is dropped; when it
   * exists the restore fails with `AlreadyExists` and has changed nothing.
   * Only for items whose store says `createsNew`.
   */
  createOnly?: boolean;
}

export interface MarkerCount {
  /** Marker sequence numbers found with the drill's nonce. */
  found: number[];
}

/**
 * The verbs every kind implements. Each says whether it is idempotent and how
 * a retry resumes: activities retry freely, so every verb must be safe to run
 * again after a crash at any point.
 */
export interface Store {
  readonly kind: string;
  readonly target: string;
  /** Reach the server, report its version and the tools' versions. Idempotent, read-only. */
  probe(ctx: StoreContext): Promise<ProbeResult>;
  /** The items a backup of this target consists of. Idempotent, read-only. */
  items(ctx: StoreContext): Promise<BackupItem[]>;
  /**
   * Streams one item's plaintext to `sink` (which encrypts and uploads it) and
   * resolves when the sink has stored it. Fails, without a stored object, if
   * the source tool fails. Idempotent: a retry dumps again from the start.
   */
  backup(ctx: StoreContext, item: BackupItem, sink: (plaintext: Readable) => Promise<void>): Promise<void>;
  /**
   * Replaces `into` (drop and recreate) with the item read from `source`.
   * Destructive: callers verify the artifact first. Idempotent: a retry drops
   * whatever a crashed attempt left and starts from a clean database.
   */
  restore(ctx: StoreContext, item: BackupItem, into: string, source: Readable, options?: RestoreOptions): Promise<void>;
  /**
   * Optional: whether `restore` of `item` honours `createOnly`. A restore of
   * such an item into a new name destroys nothing, so it streams with each
   * block of stored bytes authenticated on the way instead of after a whole
   * verify pass (src/activities/restore.ts).
   */
  createsNew?(item: BackupItem): boolean;
  /** Where the drill seeds its markers, e.g. the target's first database. */
  drillName(): string;
  /** A valid name for a drill's scratch copy, unique per `token` (hex), e.g. `lifeboat_drill_1a2b3c4d`. */
  scratchName(token: string): string;
  /** Drops `name` if it exists. Idempotent. */
  drop(ctx: StoreContext, name: string): Promise<void>;
  /** Writes markers 1..count with `nonce` into `name`. Idempotent (same nonce, same rows). */
  seedMarkers(ctx: StoreContext, name: string, count: number, nonce: string): Promise<void>;
  /**
   * Reads back the markers with `nonce` from `name`; none when it has no marker
   * table. Only markers that came back whole count: a redis marker whose TTL was
   * lost (or gained) in the round trip is not found. Read-only.
   */
  countMarkers(ctx: StoreContext, name: string, nonce: string): Promise<MarkerCount>;
  /**
   * Optional: proves the plaintext of an artifact is readable by the restore
   * tool without touching any database (e.g. `pg_restore --list`); returns a
   * one-line summary. Read-only. It may stop reading early.
   */
  inspect?(ctx: StoreContext, item: BackupItem, plaintext: Readable): Promise<string>;
  /**
   * Optional: checks, before anything is stopped or dropped, that `items` (as
   * recorded in the manifest, in restore order) can be restored into this
   * server, e.g. that the extensions a database needs are installed. Throws a
   * permanent error naming each problem and its fix. Read-only, idempotent.
   * `restore` runs the same checks for its own item before it drops anything.
   */
  preflight?(ctx: StoreContext, items: BackupItem[], options?: RestoreOptions): Promise<void>;
  /**
   * Optional, for dry runs: exactly what a restore of `item` (its plaintext in
   * `source`) into `into` would write and delete, one line each. Read-only.
   */
  preview?(ctx: StoreContext, item: BackupItem, into: string, source: Readable, options?: RestoreOptions): Promise<string[]>;
  /**
   * Optional: runs a post-restore sanity query in `name` (default: the drill
   * item) and says whether its first column of the first row is true. Read-only.
   */
  check?(ctx: StoreContext, name: string | undefined, query: string): Promise<boolean>;
  /**
   * Optional, for kinds that share stored objects between backups (a bucket's
   * pool): deletes what no remaining backup references and no Object Lock
   * protects. Runs after prune, while the target is held. Idempotent.
   */
  collectGarbage?(ctx: StoreContext): Promise<{ deleted: number; locked: number }>;
  /**
   * Optional: what restoring into `into` does beyond replacing that one name,
   * in plain words for the restore plan (e.g. a Vault snapshot replaces every
   * secret, token and policy of the server), and whether that restore must
   * be approved explicitly, even with `--yes`. Undefined: nothing to add. Pure: no I/O.
   */
  restoreNotice?(into: string): { text: string; approvalRequired: boolean } | undefined;
  /**
   * Optional: removes what an attempt on this host left behind when its
   * worker died (a decrypted spool, a drill's scratch server) and that no
   * running attempt uses. Runs at worker start; returns what it removed.
   */
  sweep?(ctx: StoreContext): Promise<string[]>;
  /** Errors that retrying cannot fix: auth failures, missing objects, bad input. */
  isPermanent(err: unknown): boolean;
}
