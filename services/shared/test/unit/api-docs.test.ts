import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { messageFrameSchema, welcomeFrameSchema } from '../../src/index.js';
import { ASYNCAPI_FILE, OPENAPI_FILE, openApiText } from '../../../../scripts/api-docs.js';

// DiagnosticSeverity from @stoplight/types: 0 error, 1 warning, 2 information, 3 hint.
const WARNING = 1;

async function problems(text: string): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(text);
  return diagnostics.filter((d) => d.severity <= WARNING).map((d) => `${d.code} ${d.message} at ${d.path.join('.')}`);
}

describe('the API documents in services/shared/api', function () {
  // The AsyncAPI parser (Spectral rulesets) takes a few seconds to warm up on a busy machine.
  this.timeout(60_000);

  it('openapi.json is the document ingest and query serve (npm run api:openapi rewrites it)', () => {
    expect(readFileSync(OPENAPI_FILE, 'utf8')).to.equal(openApiText());
  });

  it('asyncapi.yaml is valid AsyncAPI 3.0 for the official parser, without warnings', async () => {
    const text = readFileSync(ASYNCAPI_FILE, 'utf8');
    expect((parseYaml(text) as { asyncapi: string }).asyncapi).to.equal('3.0.0');
    expect(await problems(text)).to.deep.equal([]);
  });

  it('the parser does reject a broken document', async () => {
    const broken = readFileSync(ASYNCAPI_FILE, 'utf8').replace("$ref: '#/components/schemas/MessageFrame'", "$ref: '#/components/schemas/Missing'");
    expect(await problems(broken)).to.not.be.empty;
  });

  it('asyncapi.yaml carries the same version and frame schemas as the code', () => {
    const doc = parseYaml(readFileSync(ASYNCAPI_FILE, 'utf8')) as { info: { version: string }; components: { schemas: Record<string, unknown> } };
    expect(doc.info.version).to.equal((JSON.parse(openApiText()) as { info: { version: string } }).info.version);
    expect(doc.components.schemas['WelcomeFrame']).to.deep.equal(welcomeFrameSchema);
    expect(doc.components.schemas['MessageFrame']).to.deep.equal(messageFrameSchema);
  });
});
