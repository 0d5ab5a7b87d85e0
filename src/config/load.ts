import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { LifeboatError } from '../errors';
import { kindSettings } from '../stores';
import { checkSecretFile } from './fields';
import { configPath, parseConfigDocument, type Config } from './index';

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

/** Every secret file the config names exists, holds something and is private (mode 600). */
export function checkSecrets(config: Config): void {
  for (const f of config.secretFiles ?? []) checkSecretFile(f, `config ${config.file}`);
}
