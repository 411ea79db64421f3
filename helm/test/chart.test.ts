import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { falconNames } from '@falcon/shared';
import { ROOT } from '../../scripts/stack.js';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };

const CHART = join(ROOT, 'helm', 'falcon');
const helm = execFileSync(join(ROOT, 'scripts', 'ensure-helm.sh'), { encoding: 'utf8' }).trim();
const SERVICES = ['ingest', 'persister', 'query', 'realtime'];

function render(args: string[] = []): Doc[] {
  const out = execFileSync(helm, ['template', 'rel', CHART, '--namespace', 'falcon', ...args], { encoding: 'utf8' });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc)
    .filter(Boolean);
}

/**
 * Validates a rendered document offline against the Kubernetes (or CRD) schema for its kind.
 * (package.json lists @kubernetes-models/base and apimachinery directly only so that npm nests
 * the gateway-api package's older copies together and they share one schema registry.)
 */
async function validate(doc: Doc): Promise<void> {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  const module =
    group === 'keda.sh'
      ? `@kubernetes-models/keda/keda.sh/${version}/${doc.kind}`
      : group === 'gateway.networking.k8s.io'
        ? `@kubernetes-models/gateway-api/gateway.networking.k8s.io/${version}/${doc.kind}`
        : `kubernetes-models/${group ? `${group}/` : ''}${version}/${doc.kind}`;
  const models = (await import(module)) as Record<string, new (d: unknown) => { validate(): void }>;
  const Model = models[doc.kind];
  if (!Model) throw new Error(`no model for ${doc.apiVersion} ${doc.kind}`);
  new Model(doc).validate();
}

const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);
const find = (docs: Doc[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const podSpecs = (docs: Doc[]) => [...byKind(docs, 'Deployment'), ...byKind(docs, 'Job')].map((d) => ({ doc: d, spec: d.spec.template.spec }));

const COMBINATIONS: Record<string, string[]> = {
  defaults: [],
  'keda on': ['--set', 'persister.keda.enabled=true'],
  'autoscaling off': ['--set', 'persister.autoscaling.enabled=false'],
  'all autoscaled': ['--set', 'ingest.autoscaling.enabled=true', '--set', 'query.autoscaling.enabled=true', '--set', 'realtime.autoscaling.enabled=true'],
  'network policies off': ['--set', 'networkPolicy.enabled=false'],
  'route on': ['--set', 'route.enabled=true', '--set', 'route.parentRefs[0].name=gw'],
  'existing secret': ['--set', 'postgres.existingSecret=pg-credentials', '--set', 'postgres.secretKey=url'],
  'payload schema': ['--set-json', 'ingest.payloadSchema={"type":"object","required":["text"]}'],
  'dev values': ['-f', join(ROOT, 'deploy', 'falcon-values.dev.yaml')],
};

describe('helm chart', function () {
  this.timeout(60_000);

  it('passes helm lint --strict', () => {
    execFileSync(helm, ['lint', '--strict', CHART], { encoding: 'utf8' });
  });

  for (const [name, args] of Object.entries(COMBINATIONS)) {
    it(`renders schema-valid manifests: ${name}`, async () => {
      const docs = render(args);
      expect(docs.length).to.be.greaterThan(10);
      for (const doc of docs) await validate(doc);
      for (const { doc, spec } of podSpecs(docs)) {
        expect(spec.automountServiceAccountToken, doc.metadata.name).to.equal(false);
        expect(spec.securityContext.runAsNonRoot).to.equal(true);
        expect(spec.securityContext.seccompProfile.type).to.equal('RuntimeDefault');
        for (const c of spec.containers) {
          if (name !== 'dev values') expect(c.securityContext.readOnlyRootFilesystem, c.name).to.equal(true);
          expect(c.securityContext.allowPrivilegeEscalation).to.equal(false);
          expect(c.securityContext.capabilities.drop).to.deep.equal(['ALL']);
          expect(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.cpu && c.resources.limits.memory, c.name).to.be.ok;
        }
      }
    });
  }

  it('ships deploy/ manifests that are schema-valid too', async () => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'postgres.yaml'), 'utf8')).map((d) => d.toJS() as Doc);
    expect(docs.map((d) => d.kind)).to.deep.equal(['Secret', 'Service', 'StatefulSet']);
    for (const doc of docs) await validate(doc);
  });

  it('rejects values outside the schema', () => {
    expect(() => render(['--set', 'ingest.bogus=1'])).to.throw(/additional properties/);
    expect(() => render(['--set', 'nats.url=http://nope'])).to.throw(/schema/);
  });

  describe('with the defaults', () => {
    const docs = render();

    it('renders each service once by one template, with the full label set and matching selectors', () => {
      const deployments = byKind(docs, 'Deployment');
      expect(deployments.map((d) => d.metadata.labels?.['app.kubernetes.io/component']).sort()).to.deep.equal(SERVICES);
      for (const d of deployments) {
        const component = d.metadata.labels!['app.kubernetes.io/component']!;
        for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'helm.sh/chart']) {
          expect(d.metadata.labels, key).to.have.property(key);
        }
        const selector = d.spec.selector.matchLabels;
        const podLabels = d.spec.template.metadata.labels;
        for (const [k, v] of Object.entries(selector)) expect(podLabels[k], k).to.equal(v);
        const service = find(docs, 'Service', d.metadata.name)!;
        for (const [k, v] of Object.entries(service.spec.selector)) expect(podLabels[k], k).to.equal(v);
        const [container] = d.spec.template.spec.containers;
        expect(container.args).to.deep.equal([`services/${component}/dist/main.js`]);
        expect(existsSync(join(ROOT, 'services', component, 'src', 'main.ts'))).to.equal(true);
      }
    });

    it('probes /healthz for liveness and /readyz for readiness on the service port', () => {
      for (const d of byKind(docs, 'Deployment')) {
        const [c] = d.spec.template.spec.containers;
        expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'http' });
        expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'http' });
        const port = c.ports[0].containerPort;
        expect(c.env.find((e: { name: string }) => e.name === 'PORT').value).to.equal(String(port));
      }
      const ports = Object.fromEntries(byKind(docs, 'Deployment').map((d) => [d.metadata.labels!['app.kubernetes.io/component'], d.spec.template.spec.containers[0].ports[0].containerPort]));
      expect(ports).to.deep.equal({ realtime: 8080, ingest: 8081, query: 8082, persister: 8083 });
    });

    it('has the persister HPA target the persister Deployment, which then has no replicas field', () => {
      const hpas = byKind(docs, 'HorizontalPodAutoscaler');
      expect(hpas).to.have.length(1);
      const [hpa] = hpas;
      expect(hpa!.spec.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'rel-falcon-persister' });
      expect(hpa!.spec).to.include({ minReplicas: 1, maxReplicas: 5 });
      expect(hpa!.spec.metrics[0].resource).to.deep.equal({ name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } });
      expect(find(docs, 'Deployment', 'rel-falcon-persister')!.spec).to.not.have.property('replicas');
      expect(find(docs, 'Deployment', 'rel-falcon-ingest')!.spec.replicas).to.equal(2);
    });

    it('gives pods longer to stop than the services give themselves', () => {
      const config = find(docs, 'ConfigMap', 'rel-falcon-config')!;
      for (const d of byKind(docs, 'Deployment')) {
        expect(d.spec.template.spec.terminationGracePeriodSeconds * 1000).to.be.greaterThan(Number(config.data!['SHUTDOWN_TIMEOUT_MS']) + 5000);
      }
    });

    it('runs migrations once per release as a pre-install,pre-upgrade hook Job', () => {
      const job = find(docs, 'Job', 'rel-falcon-migrate')!;
      expect(job.metadata.annotations!['helm.sh/hook']).to.equal('pre-install,pre-upgrade');
      expect(job.spec.template.spec.containers[0].args).to.deep.equal(['services/persister/dist/migrate-main.js']);
      const secret = find(docs, 'Secret', 'rel-falcon-migrate')!;
      expect(Number(secret.metadata.annotations!['helm.sh/hook-weight'])).to.be.lessThan(Number(job.metadata.annotations!['helm.sh/hook-weight']));
    });

    it('reads DATABASE_URL from a Secret and only where it is needed', () => {
      for (const d of byKind(docs, 'Deployment')) {
        const component = d.metadata.labels!['app.kubernetes.io/component'];
        const env = d.spec.template.spec.containers[0].env as { name: string; valueFrom?: { secretKeyRef: { name: string } } }[];
        const db = env.find((e) => e.name === 'DATABASE_URL');
        if (component === 'persister' || component === 'query') expect(db?.valueFrom?.secretKeyRef.name).to.equal('rel-falcon-database');
        else expect(db).to.equal(undefined);
      }
    });

    it('limits traffic with a NetworkPolicy per service', () => {
      const policies = byKind(docs, 'NetworkPolicy');
      expect(policies).to.have.length(4);
      const ingest = find(docs, 'NetworkPolicy', 'rel-falcon-ingest')!;
      const egressPorts = ingest.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port));
      expect(egressPorts).to.include.members([53, 4222]).and.not.include(5432);
      const query = find(docs, 'NetworkPolicy', 'rel-falcon-query')!;
      expect(query.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port))).to.include(5432).and.not.include(4222);
    });
  });

  it('with KEDA on: a ScaledObject on the right stream and consumer, and no HPA to fight it', () => {
    for (const namespace of ['falcon', 'team-a']) {
      const docs = render(['--set', 'persister.keda.enabled=true', '--set', `namespace=${namespace}`]);
      const names = falconNames(namespace);
      const [so] = byKind(docs, 'ScaledObject');
      expect(so!.spec.scaleTargetRef.name).to.equal('rel-falcon-persister');
      expect(so!.spec.triggers[0]).to.deep.include({ type: 'nats-jetstream' });
      expect(so!.spec.triggers[0].metadata).to.include({ stream: names.stream, consumer: names.persisterConsumer, account: '$G' });
      expect(byKind(docs, 'HorizontalPodAutoscaler')).to.have.length(0);
      expect(find(docs, 'Deployment', 'rel-falcon-persister')!.spec).to.not.have.property('replicas');
      expect(find(docs, 'ConfigMap', 'rel-falcon-config')!.data!['FALCON_NAMESPACE']).to.equal(namespace);
    }
  });

  it('with autoscaling off: the persister has replicas and no HPA', () => {
    const docs = render(['--set', 'persister.autoscaling.enabled=false', '--set', 'persister.replicaCount=3']);
    expect(byKind(docs, 'HorizontalPodAutoscaler')).to.have.length(0);
    expect(find(docs, 'Deployment', 'rel-falcon-persister')!.spec.replicas).to.equal(3);
  });

  it('with the route on: POST and GET /api/messages reach different services under one host', () => {
    const docs = render(COMBINATIONS['route on']!);
    const [route] = byKind(docs, 'HTTPRoute');
    const backendFor = (method: string, path: string) =>
      route!.spec.rules.find((r: { matches: { method?: string; path: { value: string } }[] }) => r.matches.some((m) => (m.method ?? method) === method && path.startsWith(m.path.value)))?.backendRefs[0].name;
    expect(backendFor('POST', '/api/messages')).to.equal('rel-falcon-ingest');
    expect(backendFor('GET', '/api/messages')).to.equal('rel-falcon-query');
    expect(backendFor('GET', '/ws')).to.equal('rel-falcon-realtime');
    expect(find(docs, 'ConfigMap', 'rel-falcon-config')!.data!['REALTIME_PUBLIC_INGEST_URL']).to.equal('https://falcon.example.com');
  });

  it('with an existing Secret: no connection string in the chart, and every reader uses that Secret', () => {
    const docs = render(COMBINATIONS['existing secret']!);
    expect(byKind(docs, 'Secret')).to.have.length(0);
    for (const { spec } of podSpecs(docs)) {
      const db = spec.containers[0].env.find((e: { name: string }) => e.name === 'DATABASE_URL');
      if (db) expect(db.valueFrom.secretKeyRef).to.deep.equal({ name: 'pg-credentials', key: 'url' });
    }
  });

  it('with network policies off: none rendered', () => {
    expect(byKind(render(COMBINATIONS['network policies off']!), 'NetworkPolicy')).to.have.length(0);
  });

  it('mounts the payload schema into ingest when one is given', () => {
    const docs = render(COMBINATIONS['payload schema']!);
    const ingest = find(docs, 'Deployment', 'rel-falcon-ingest')!;
    const env = ingest.spec.template.spec.containers[0].env as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'INGEST_SCHEMA_FILE')?.value).to.equal('/etc/falcon/payload-schema.json');
    expect(JSON.parse(find(docs, 'ConfigMap', 'rel-falcon-config')!.data!['payload-schema.json']!)).to.deep.equal({ type: 'object', required: ['text'] });
  });
});
