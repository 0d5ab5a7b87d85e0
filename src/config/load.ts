import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { LifeboatError } from '../errors';
import { kindSettings } from '../stores';
import { checkSecretFile, schemaContext } from './fields';
import { configPath, parseConfigDocument, parseTargetSettings, type Config } from './index';

/**
 * Reading lifeboat.yaml: YAML, then the one schema, with each target checked
 * against its kind's settings (declared in src/stores/<kind>/settings.ts and
 * registered in src/stores/index.ts). Kept apart from ./index because the
 * stores import the config's types.
 */
export function parseConfig(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new LifeboatError('ConfigError', `config ${file} is not valid YAML: ${(err as Error).message}`);
  }
  return parseConfigDocument(raw, file, kindSettings());
}

export function loadConfig(explicit?: string): Config {
  const file = configPath(explicit);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LifeboatError(
      'ConfigError',
      `cannot read config ${file} (${(err as NodeJS.ErrnoException).code ?? err}); pass --config FILE or set LIFEBOAT_CONFIG (the local stack writes one: scripts/stack.sh env)`,
    );
  }
  return parseConfig(text, file);
}

/**
 * The secret files a worker serving `targets` reads: the repository's keys,
 * the age identity and the signing key, and those targets' own secrets
 * (a worker beside one store needs only that store's).
 */
export function secretFilesFor(config: Config, targets: string[]): string[] {
  const files = new Set<string>();
  const r = config.repository;
  if (r.kind === 's3') for (const ref of [r.accessKeyId, r.secretAccessKey]) if (ref && 'file' in ref) files.add(ref.file);
  if (config.encryption?.identityFile) files.add(config.encryption.identityFile);
  if (config.signing?.keyFile) files.add(config.signing.keyFile);
  const kinds = kindSettings();
  for (const name of targets) {
    const t = config.targets.get(name);
    const kind = t && kinds[t.kind];
    if (!t || !kind) continue;
    const c = schemaContext(config.file);
    parseTargetSettings(config.file, t, kind.settings, c);
    for (const f of c.secretFiles) files.add(f);
  }
  return [...files];
}

/** Every secret file a worker serving `targets` reads exists, holds something and is private (mode 600). */
export function checkSecrets(config: Config, targets: string[]): void {
  for (const f of secretFilesFor(config, targets)) checkSecretFile(f, `config ${config.file}`);
}
