import { z } from 'zod';
import { configSchema, targetSchema, type KindSettings } from './index';

/**
 * lifeboat.yaml's JSON Schema, from the same zod schema that validates it:
 * for editors (`# yaml-language-server: $schema=…`) and docs/config.md.
 */
export function configJsonSchema(kinds: Record<string, KindSettings>): Record<string, unknown> {
  const c = { dir: '.', secretFiles: [] };
  const targets = Object.entries(kinds).map(([kind, k]) => targetSchema(c, k.settings).extend({ kind: z.literal(kind) }));
  const schema = configSchema(c).extend({
    targets: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/), z.union(targets as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]])).meta({ description: 'the things to back up, by name' }),
  });
  return {
    ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }),
    $id: 'https://lifeboat.dev/schema/lifeboat.yaml.json',
    title: 'lifeboat.yaml',
  };
}
