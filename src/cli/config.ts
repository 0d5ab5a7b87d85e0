import { checkSecretFile } from '../config/fields';
import { configJsonSchema } from '../config/json-schema';
import { configReference } from '../config/reference';
import type { Config } from '../config';
import { kindSettings, openStore } from '../stores';
import { messageOf } from '../errors';
import { EXIT, type ExitCode } from './exit';
import type { Output } from './output';

/**
 * `lifeboat config check`: the config loaded and validated (done by then),
 * every secret file present and private, every target's store built; prints
 * what the config resolved to. Secrets are shown as their references only.
 */
export async function check(config: Config, out: Output): Promise<ExitCode> {
  const problems: string[] = [];
  for (const f of config.secretFiles ?? []) {
    try {
      checkSecretFile(f, 'secret');
    } catch (err) {
      problems.push(messageOf(err));
    }
  }
  for (const t of config.targets.keys()) {
    try {
      openStore(config, t);
    } catch (err) {
      problems.push(messageOf(err));
    }
  }
  const resolved = {
    file: config.file,
    temporal: config.temporal,
    repository: config.repository,
    encryption: config.encryption ?? 'none',
    signing: config.signing ?? null,
    retention: config.retention,
    schedules: config.schedules,
    targets: Object.fromEntries([...config.targets.values()].map((t) => [t.name, { kind: t.kind, taskQueue: t.taskQueue ?? config.temporal.taskQueue, ...t.settings }])),
    secretFiles: config.secretFiles ?? [],
  };
  out.result({ ok: problems.length === 0, problems, config: resolved }, [
    `config ${config.file}: ${problems.length ? `${problems.length} problem(s)` : 'ok'}`,
    ...problems.map((p) => `  problem: ${p}`),
    `  temporal    ${config.temporal.address} namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue}`,
    `  repository  ${config.repository.kind === 's3' ? `s3://${config.repository.bucket}/${config.repository.prefix}${config.repository.endpoint ? ` at ${config.repository.endpoint}` : ''}` : config.repository.path}`,
    `  encryption  ${config.encryption ? `age, ${config.encryption.recipients.length} recipient(s)${config.encryption.identityFile ? `, identity ${config.encryption.identityFile}` : ', no identity (backups only)'}` : 'none'}`,
    `  signing     ${config.signing ? `${config.signing.keyFile ? `key ${config.signing.keyFile}, ` : 'no key (restores only), '}${config.signing.publicKeys.length} trusted public key(s)` : 'not configured: restores need --allow-unsigned'}`,
    ...[...config.targets.values()].map((t) => `  target      ${t.name} (${t.kind})${t.taskQueue ? ` on task queue ${t.taskQueue}` : ''}`),
    `  secrets     ${(config.secretFiles ?? []).length} file(s) checked`,
  ]);
  return problems.length ? EXIT.usage : EXIT.ok;
}

/** `lifeboat config reference`: the settings reference (docs/config-reference.md). */
export async function reference(): Promise<ExitCode> {
  process.stdout.write(configReference(kindSettings()));
  return EXIT.ok;
}

/** `lifeboat config schema`: the JSON Schema, for editors. */
export async function schema(): Promise<ExitCode> {
  process.stdout.write(`${JSON.stringify(configJsonSchema(kindSettings()), null, 2)}\n`);
  return EXIT.ok;
}
