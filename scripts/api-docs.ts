/**
 * `npm run api:openapi`: writes the OpenAPI document the services serve (built from the
 * contract schemas in services/shared) to services/shared/api/openapi.json, the in-repository
 * API reference. A unit test fails while the file and the served document differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '@falcon/shared';
import { ROOT } from './stack.js';

export const OPENAPI_FILE = join(ROOT, 'services/shared/api/openapi.json');
export const ASYNCAPI_FILE = join(ROOT, 'services/shared/api/asyncapi.yaml');

/** The served document for the version in services/shared/package.json, as the file holds it. */
export function openApiText(): string {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'services/shared/package.json'), 'utf8')) as { version: string };
  return `${JSON.stringify(openApiDocument(version), null, 2)}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(OPENAPI_FILE, openApiText());
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}
