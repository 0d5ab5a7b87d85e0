import { PostgresStore } from '../../src/stores/postgres';
import { testEnv } from '../helpers/env';
import { createDatabase, dropDatabase, seedApp } from '../helpers/pg';
import type { ContractKind } from './kinds';

const env = testEnv('contractpg');
const target = env.config.targets.get('app-pg')!;

export const postgresKind: ContractKind = {
  kind: 'postgres',
  async setup() {
    await createDatabase(env.config, env.databases[0]!);
    await seedApp(env.config, env.databases[0]!, 100);
    return new PostgresStore(env.config.file, target);
  },
  async badCredentials() {
    process.env.LIFEBOAT_CONTRACT_BAD_PW = 'wrong-password';
    return new PostgresStore(env.config.file, { ...target, settings: { ...target.settings, password: { env: 'LIFEBOAT_CONTRACT_BAD_PW' } } });
  },
  async teardown() {
    await dropDatabase(env.config, env.databases[0]!);
  },
};
