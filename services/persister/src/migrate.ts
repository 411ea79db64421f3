import { fileURLToPath } from 'node:url';
import { migrateDatabase, type Logger } from '@falcon/shared';

/** The persister owns the schema's migrations; their names and shapes are in shared contracts. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export function runMigrations(databaseUrl: string, log: Logger): Promise<string[]> {
  return migrateDatabase({ databaseUrl, dir: MIGRATIONS_DIR, log });
}
