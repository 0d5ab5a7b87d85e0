import type { z } from 'zod';
import type { CompressionConfig } from '../domain/compression';
import type { RetentionPolicy } from '../domain/retention';
import type { ScheduleSettings } from '../domain/schedules';
import type { SchemaContext, SecretRef } from './fields';
import type { TargetChecks, TargetHooks } from './hooks';

/** The config as lifeboat uses it, once src/config/index.ts has validated lifeboat.yaml. */
export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  uiUrl?: string;
  /** Tag runs with lifeboat's search attributes (the server must have them registered). */
  searchAttributes: boolean;
  /** How long a running activity may go without a heartbeat before Temporal retries it on another worker. */
  heartbeatTimeoutSeconds: number;
}

/** Where an S3 bucket or prefix is and how to reach it: the repository's and a bucket target's. */
export interface S3Location {
  /** S3 endpoint URL; omitted for AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId?: SecretRef;
  secretAccessKey?: SecretRef;
}

export interface S3RepositoryConfig extends S3Location {
  kind: 's3';
  partSizeMB: number;
  queueSize: number;
  /** Write artifacts with an Object Lock retention (the bucket must have Object Lock enabled). */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

export interface LocalRepositoryConfig {
  kind: 'local';
  path: string;
}

export type RepositoryConfig = S3RepositoryConfig | LocalRepositoryConfig;

export interface EncryptionConfig {
  /** Public age recipients: all a backup needs. */
  recipients: string[];
  /** age identity file: only restore and verify read it. */
  identityFile?: string;
}

export interface SigningConfig {
  /** The Ed25519 private key (PEM) backups sign their manifests with; only backup workers need it. */
  keyFile?: string;
  /** Public keys (`lifeboat-ed25519:…`) whose signatures restore and verify accept. */
  publicKeys: string[];
}

/** A target's settings as written (validated against its kind's schema); its store reads them. */
export interface TargetConfig {
  name: string;
  kind: string;
  settings: Record<string, unknown>;
  /** Writer hooks and post-restore checks; none when omitted. */
  hooks?: TargetHooks;
  checks?: TargetChecks;
  /** The task queue of the worker beside this target's store; the config's task queue when omitted. */
  taskQueue?: string;
}

/** The worker's Prometheus endpoint (`metrics:`); off when the section is absent. */
export interface MetricsConfig {
  port: number;
  host: string;
  /** How often the per-target facts are read from the repository again. */
  refreshSeconds: number;
}

export interface Config {
  file: string;
  retention: RetentionPolicy;
  temporal: TemporalConfig;
  repository: RepositoryConfig;
  /** null when the config says `encryption: none` explicitly. */
  encryption: EncryptionConfig | null;
  /** Manifest signatures; none configured means backups are unsigned and restores need --allow-unsigned. */
  signing?: SigningConfig;
  targets: Map<string, TargetConfig>;
  /** The `schedules:` section (`lifeboat schedule apply`); defaults when omitted. */
  schedules?: ScheduleSettings;
  /** Every secret file the config references (checked by `config check` and the worker). */
  secretFiles?: string[];
  /** How artifacts are compressed before they are encrypted; zstd level 3 when omitted. */
  compression?: CompressionConfig;
  /** `lifeboat worker` serves Prometheus metrics when set. */
  metrics?: MetricsConfig;
}

/** One kind's settings, as its store declares them: a zod shape (src/stores/<kind>/settings.ts). */
export type KindShape = (c: SchemaContext) => z.core.$ZodLooseShape;

/** A kind as the config sees it: its settings, and the checks across fields its store makes (optional). */
export interface KindSettings {
  settings: KindShape;
  /** Parses a target's settings, throwing a ConfigError for what the shape alone cannot say. */
  parse?(configFile: string, t: Pick<TargetConfig, 'name' | 'settings'>): unknown;
}
