import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { falconNames } from '@falcon/shared';
import { ROOT } from '../../scripts/stack.js';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };
type Env = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };

const CHART = join(ROOT, 'helm', 'falcon');
const SERVICES = ['ingest', 'persister', 'query', 'realtime'];
/** Each test renders with both helm majors: the chart's floor is helm 3.12 (see README). */
const HELMS = [3, 4].map((major) => ({ major, bin: execFileSync(join(ROOT, 'scripts', 'ensure-helm.sh'), [String(major)], { encoding: 'utf8' }).trim() }));
/** The three values the chart refuses to render without. */
const REQUIRED = ['--set', 'image.repository=registry.example.com/falcon', '--set', 'postgres.existingSecret=falcon-db', '--set', 'auth.existingSecret=falcon-auth'];

/**
 * Validates a rendered document offline against the Kubernetes (or CRD) schema for its kind.
 * (package.json lists @kubernetes-models/base and apimachinery directly only so that npm nests
 * the CRD packages' older copies together and they share one schema registry.)
 */
async function validate(doc: Doc): Promise<void> {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  const module =
    group === 'keda.sh'
      ? `@kubernetes-models/keda/keda.sh/${version}/${doc.kind}`
      : group === 'gateway.networking.k8s.io'
        ? `@kubernetes-models/gateway-api/gateway.networking.k8s.io/${version}/${doc.kind}`
        : group === 'monitoring.coreos.com'
          ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${doc.kind}`
          : `kubernetes-models/${group ? `${group}/` : ''}${version}/${doc.kind}`;
  const models = (await import(module)) as Record<string, new (d: unknown) => { validate(): void }>;
  const Model = models[doc.kind];
  if (!Model) throw new Error(`no model for ${doc.apiVersion} ${doc.kind}`);
  new Model(doc).validate();
}

const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);
const find = (docs: Doc[], kind: string, name: string) => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!doc) throw new Error(`no ${kind} ${name} rendered`);
  return doc;
};
const podSpecOf = (d: Doc) => (d.kind === 'CronJob' ? d.spec.jobTemplate.spec.template.spec : d.kind === 'Pod' ? d.spec : d.spec.template.spec);
const podSpecs = (docs: Doc[]) => docs.filter((d) => ['Deployment', 'Job', 'CronJob', 'Pod'].includes(d.kind)).map((d) => ({ doc: d, spec: podSpecOf(d) }));
const container = (docs: Doc[], service: string) => find(docs, 'Deployment', `rel-falcon-${service}`).spec.template.spec.containers[0];
const envOf = (c: { env?: Env[] }) => new Map((c.env ?? []).map((e) => [e.name, e]));
const config = (docs: Doc[]) => find(docs, 'ConfigMap', 'rel-falcon-config').data!;
const workloads = (docs: Doc[]) => docs.filter((d) => ['Deployment', 'Job', 'CronJob'].includes(d.kind));

const MONITORING = ['serviceMonitor', 'podMonitor', 'prometheusRule', 'grafanaDashboard'].flatMap((k) => ['--set', `monitoring.${k}.enabled=true`]);
const COMBINATIONS: Record<string, string[]> = {
  'required values only': [],
  'keda on': ['--set', 'persister.keda.enabled=true'],
  'autoscaling off': ['--set', 'persister.autoscaling.enabled=false'],
  'all autoscaled': ['--set', 'ingest.autoscaling.enabled=true', '--set', 'query.autoscaling.enabled=true', '--set', 'realtime.autoscaling.enabled=true'],
  'network policies off': ['--set', 'networkPolicy.enabled=false'],
  'route on': ['--set', 'route.enabled=true', '--set', 'route.parentRefs[0].name=gw'],
  'chart-owned secrets': ['--set', 'postgres.existingSecret=', '--set', 'postgres.url=postgres://falcon:pw@db:5432/falcon', '--set', 'auth.existingSecret=', '--set', 'auth.jwtSecret=chart-test-secret-0123456789abcdefghij'],
  'auth off': ['--set', 'auth.existingSecret=', '--set', 'auth.enabled=false'],
  'payload schema': ['--set-json', 'ingest.payloadSchema={"type":"object","required":["text"]}'],
  'tls and credentials': ['--set', 'postgres.ca.existingSecret=pg-ca', '--set', 'nats.auth.existingSecret=nats-client', '--set', 'nats.auth.credsKey=falcon.creds', '--set', 'nats.auth.tlsCaKey=ca.crt'],
  'retention on': ['--set', 'retention.days=30'],
  monitoring: MONITORING,
  'dev values': ['-f', join(ROOT, 'deploy', 'falcon-values.dev.yaml')],
};

for (const { major, bin } of HELMS) {
  const run = (args: string[]) => execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  /** helm template with the required values (dev values bring their own), optionally without them. */
  const renderText = (args: string[] = [], { required = true } = {}) =>
    run(['template', 'rel', CHART, '--namespace', 'falcon', ...(required ? REQUIRED : []), ...args]);
  const render = (args: string[] = [], options?: { required?: boolean }): Doc[] =>
    parseAllDocuments(renderText(args, options))
      .map((d) => d.toJS() as Doc)
      .filter(Boolean);
  /** The error helm prints when it refuses to render. */
  const refusal = (args: string[], options?: { required?: boolean }): string => {
    try {
      renderText(args, options);
    } catch (err) {
      return String((err as { stderr?: string }).stderr);
    }
    throw new Error(`helm rendered ${args.join(' ')}`);
  };

  describe(`helm chart, rendered by helm ${major} (${run(['version', '--short']).trim()})`, function () {
    this.timeout(120_000);

    it('passes helm lint --strict', () => {
      run(['lint', '--strict', CHART, ...REQUIRED]);
    });

    for (const [name, args] of Object.entries(COMBINATIONS)) {
      it(`renders schema-valid, locked-down manifests: ${name}`, async () => {
        const docs = render(args, { required: name !== 'dev values' });
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

    it("renders with helm's default Kubernetes version, as Tilt's helm() calls it (no --kube-version), and refuses clusters older than 1.27", () => {
      renderText();
      expect(refusal(['--kube-version', '1.26.0'])).to.match(/kubeVersion|incompatible/i);
    });

    it('rejects values outside the schema', () => {
      expect(refusal(['--set', 'ingest.bogus=1'])).to.match(/additional propert/i);
      expect(refusal(['--set', 'nats.url=http://nope'])).to.match(/schema/);
    });

    describe('refuses to render what would be insecure or unusable, and says what to set', () => {
      it('without an image repository (no default image in a registry namespace the project does not own)', () => {
        const args = ['--set', 'postgres.existingSecret=db', '--set', 'auth.jwtSecret=chart-test-secret-0123456789abcdefghij'];
        expect(refusal(args, { required: false })).to.include('image.repository is required');
      });

      it('without a database Secret (no default connection string with a password)', () => {
        const args = ['--set', 'image.repository=r/f', '--set', 'auth.jwtSecret=chart-test-secret-0123456789abcdefghij'];
        expect(refusal(args, { required: false })).to.include('postgres.existingSecret is required').and.include('sslmode=verify-full');
      });

      it('with an HS256 secret shorter than 256 bits (RFC 7518 section 3.2), which the services would refuse at start', () => {
        const args = ['--set', 'image.repository=r/f', '--set', 'postgres.existingSecret=db', '--set', 'auth.jwtSecret=too-short'];
        expect(refusal(args, { required: false })).to.match(/jwtSecret/);
      });

      it('without a key to verify tokens, unless auth.enabled=false is said explicitly', () => {
        const args = ['--set', 'image.repository=r/f', '--set', 'postgres.existingSecret=db'];
        expect(refusal(args, { required: false })).to.include('auth.enabled=false');
        render([...args, '--set', 'auth.enabled=false'], { required: false });
        render([...args, '--set', 'auth.jwksUrl=https://issuer.example.com/.well-known/jwks.json', '--set', 'tests.enabled=false'], { required: false });
      });

      it('with a page token that may write or has no scope: every visitor of the page can read it', () => {
        const token = (scope: string) => execFileSync('node', [join(ROOT, 'scripts', 'dev-token.mjs'), 'chart-test-secret-0123456789abcdefghij', scope], { encoding: 'utf8' }).trim();
        expect(refusal(['--set', `auth.pageToken=${token('messages:write messages:read messages:subscribe')}`])).to.include('(it also holds messages:write)');
        expect(refusal(['--set', 'auth.pageToken=not-a-jwt'])).to.include('auth.pageToken must be a JWT with a scope claim');
        const page = render(['--set', `auth.pageToken=${token('messages:read messages:subscribe')}`, '--set', 'auth.existingSecret=', '--set', 'auth.jwtSecret=chart-test-secret-0123456789abcdefghij']);
        expect(envOf(container(page, 'realtime')).get('REALTIME_PAGE_TOKEN')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'rel-falcon-auth', key: 'REALTIME_PAGE_TOKEN' });
      });

      it('with CORS open to every origin (`*` is for the local stack only)', () => {
        expect(refusal(['--set', 'cors.allowOrigins=*'])).to.include('cors.allowOrigins');
      });

      it('with an HTTPRoute but no Gateway to attach it to', () => {
        expect(refusal(['--set', 'route.enabled=true'])).to.include('route.parentRefs is required');
      });

      it('when the Postgres pools at the autoscalers’ maximum exceed max_connections', () => {
        const message = refusal(['--set', 'persister.autoscaling.maxReplicas=30']);
        // (30 + 1) x 4 + (2 + 1) x 10 + 2 = 156 > 100 - 10
        expect(message).to.include('(156 = ').and.include('(90)');
        render(['--set', 'persister.autoscaling.maxReplicas=30', '--set', 'postgres.maxConnections=200']);
        render(['--set', 'persister.autoscaling.maxReplicas=30', '--set', 'postgres.maxConnections=0']);
      });
    });

    describe('with the required values only', () => {
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
          const service = find(docs, 'Service', d.metadata.name);
          for (const [k, v] of Object.entries(service.spec.selector)) expect(podLabels[k], k).to.equal(v);
          const [c] = d.spec.template.spec.containers;
          expect(c.image).to.equal('registry.example.com/falcon:0.1.0');
          expect(c.args).to.deep.equal([`services/${component}/dist/main.js`]);
          expect(existsSync(join(ROOT, 'services', component, 'src', 'main.ts'))).to.equal(true);
        }
      });

      it('serves probes and metrics on the ops port (OPS_PORT=9090), the API on the contract port', () => {
        expect(config(docs)['OPS_PORT']).to.equal('9090');
        for (const d of byKind(docs, 'Deployment')) {
          const [c] = d.spec.template.spec.containers;
          expect(c.ports).to.deep.include({ name: 'ops', containerPort: 9090, protocol: 'TCP' });
          expect(c.startupProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'ops' });
          expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'ops' });
          expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'ops' });
          expect(d.spec.template.metadata.annotations['prometheus.io/port']).to.equal('9090');
          const http = c.ports.find((p: { name: string }) => p.name === 'http').containerPort;
          expect(envOf(c).get('PORT')?.value).to.equal(String(http));
          expect(find(docs, 'Service', d.metadata.name).spec.ports.map((p: { name: string }) => p.name)).to.deep.equal(['http', 'ops']);
        }
        const ports = Object.fromEntries(SERVICES.map((s) => [s, container(docs, s).ports[0].containerPort]));
        expect(ports).to.deep.equal({ realtime: 8080, ingest: 8081, query: 8082, persister: 8083 });
      });

      it('admits Prometheus to the ops port only, and the public to the API ports only (none on the persister)', () => {
        for (const service of SERVICES) {
          const policy = find(docs, 'NetworkPolicy', `rel-falcon-${service}`);
          const ops = policy.spec.ingress.find((r: { ports: { port: string }[] }) => r.ports.some((p) => p.port === 'ops'));
          expect(ops.ports).to.deep.equal([{ port: 'ops', protocol: 'TCP' }]);
          expect(ops.from).to.deep.equal([{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
          const publicRules = policy.spec.ingress.filter((r: { ports: { port: string }[] }) => r !== ops);
          if (service === 'persister') expect(publicRules).to.deep.equal([]);
          else expect(publicRules.map((r: { ports: unknown }) => r.ports)).to.deep.equal([[{ port: 'http', protocol: 'TCP' }]]);
        }
        const egress = (service: string) =>
          find(docs, 'NetworkPolicy', `rel-falcon-${service}`).spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port));
        expect(egress('ingest')).to.include.members([53, 4222]).and.not.include(5432);
        expect(egress('query')).to.include(5432).and.not.include(4222);
      });

      it('has the persister HPA target the persister Deployment, which then has no replicas field', () => {
        const [hpa, ...others] = byKind(docs, 'HorizontalPodAutoscaler');
        expect(others).to.have.length(0);
        expect(hpa!.metadata.name).to.equal('rel-falcon-persister');
        expect(hpa!.spec.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'rel-falcon-persister' });
        expect(hpa!.spec).to.include({ minReplicas: 1, maxReplicas: 5 });
        expect(hpa!.spec.metrics[0].resource).to.deep.equal({ name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } });
        expect(find(docs, 'Deployment', 'rel-falcon-persister').spec).to.not.have.property('replicas');
        expect(find(docs, 'Deployment', 'rel-falcon-ingest').spec.replicas).to.equal(2);
      });

      it('gives pods longer to stop than the services give themselves', () => {
        for (const d of byKind(docs, 'Deployment')) {
          expect(d.spec.template.spec.terminationGracePeriodSeconds * 1000).to.be.greaterThan(Number(config(docs)['SHUTDOWN_TIMEOUT_MS']) + 5000);
        }
      });

      it('renders every number in the ConfigMap as an integer, never in exponent notation', () => {
        const data = config(docs);
        expect(data['REALTIME_HISTORY_MAX_BYTES']).to.equal('33554432');
        for (const [key, value] of Object.entries(data)) {
          if (/^\d|e\+/.test(value)) expect(value, key).to.match(/^\d+$/);
        }
        const big = join(mkdtempSync(join(tmpdir(), 'falcon-chart-')), 'values.yaml');
        writeFileSync(big, 'realtime:\n  historyMaxBytes: 1073741824\n  env:\n    EXTRA_BYTES: 268435456\n');
        const bigDocs = render(['-f', big]);
        expect(config(bigDocs)['REALTIME_HISTORY_MAX_BYTES']).to.equal('1073741824');
        expect(envOf(container(bigDocs, 'realtime')).get('EXTRA_BYTES')?.value).to.equal('268435456');
      });

      it('points NATS_URL and the KEDA endpoint at fully qualified names of the release’s NATS', () => {
        expect(config(docs)['NATS_URL']).to.equal('nats://nats.falcon.svc.cluster.local:4222');
      });

      it('gives persister and query a PG_POOL_MAX from values, and no one else', () => {
        expect(envOf(container(docs, 'persister')).get('PG_POOL_MAX')?.value).to.equal('4');
        expect(envOf(container(docs, 'query')).get('PG_POOL_MAX')?.value).to.equal('10');
        expect(envOf(container(docs, 'ingest')).has('PG_POOL_MAX')).to.equal(false);
        expect(envOf(container(docs, 'ingest')).has('DATABASE_URL')).to.equal(false);
        expect(envOf(container(docs, 'realtime')).has('DATABASE_URL')).to.equal(false);
        expect(envOf(container(docs, 'query')).get('DATABASE_URL')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'falcon-db', key: 'DATABASE_URL' });
      });

      it('bounds the query’s exports from values (QUERY_EXPORT_*), below its pool, as the service requires', () => {
        expect(config(docs)).to.include({ QUERY_EXPORT_CONCURRENCY: '2', QUERY_EXPORT_STATEMENT_TIMEOUT_MS: '900000', QUERY_EXPORT_STALL_TIMEOUT_MS: '30000' });
        const set = config(render(['--set', 'query.exports.concurrency=4', '--set', 'query.exports.statementTimeoutMs=3600000', '--set', 'query.exports.stallTimeoutMs=5000']));
        expect(set).to.include({ QUERY_EXPORT_CONCURRENCY: '4', QUERY_EXPORT_STATEMENT_TIMEOUT_MS: '3600000', QUERY_EXPORT_STALL_TIMEOUT_MS: '5000' });
        expect(refusal(['--set', 'query.exports.concurrency=10'])).to.include('query.exports.concurrency (10) must be below query.poolMax (10)');
        expect(refusal(['--set', 'query.exports.stallTimeoutMs=10'])).to.match(/schema/);
      });

      it('sizes the persister’s memory limit from what it holds in flight', () => {
        // (concurrency 4 + 3) x batchSize 1000 x maxBytes 64 KiB x 2, in MiB, + 160 MiB
        expect(container(docs, 'persister').resources.limits.memory).to.equal(`${160 + Math.ceil((7 * 1000 * 65536 * 2) / 1048576)}Mi`);
        const smaller = render(['--set', 'persister.batchSize=100', '--set', 'ingest.maxBytes=16384']);
        expect(container(smaller, 'persister').resources.limits.memory).to.equal(`${160 + Math.ceil((7 * 100 * 16384 * 2) / 1048576)}Mi`);
        const explicit = render(['--set', 'persister.resources.limits.memory=2Gi']);
        expect(container(explicit, 'persister').resources.limits).to.deep.equal({ cpu: '1', memory: '2Gi' });
      });

      it('spreads each service’s replicas across nodes, softly', () => {
        for (const service of SERVICES) {
          const [spread, ...others] = find(docs, 'Deployment', `rel-falcon-${service}`).spec.template.spec.topologySpreadConstraints;
          expect(others).to.have.length(0);
          expect(spread).to.deep.include({ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway' });
          expect(spread.labelSelector.matchLabels['app.kubernetes.io/component']).to.equal(service);
        }
      });

      it('turns auth on: the verifying key reaches ingest, query and realtime, never the persister', () => {
        for (const service of ['ingest', 'query', 'realtime']) {
          const env = envOf(container(docs, service));
          expect(env.get('AUTH_JWT_SECRET')?.valueFrom?.secretKeyRef, service).to.deep.equal({ name: 'falcon-auth', key: 'AUTH_JWT_SECRET' });
          expect(env.get('AUTH_CLOCK_TOLERANCE_SECONDS')?.value).to.equal('5');
        }
        expect([...envOf(container(docs, 'persister')).keys()].filter((k) => k.startsWith('AUTH_'))).to.deep.equal([]);
      });

      it('sets the per-replica ingest rate limit only when asked, with a burst of at least the rate', () => {
        expect(config(docs)).to.not.have.property('INGEST_RATE_LIMIT');
        const limited = config(render(['--set', 'ingest.rateLimit=100']));
        expect([limited['INGEST_RATE_LIMIT'], limited['INGEST_RATE_BURST']]).to.deep.equal(['100', '100']);
        const bursty = config(render(['--set', 'ingest.rateLimit=100', '--set', 'ingest.rateBurst=500']));
        expect(bursty['INGEST_RATE_BURST']).to.equal('500');
      });

      it('allows CORS from the page’s own URL only', () => {
        expect(config(docs)['CORS_ALLOW_ORIGINS']).to.equal('http://127.0.0.1:8080');
        expect(config(render(['--set', 'cors.allowOrigins=https://a.example\\,https://b.example']))['CORS_ALLOW_ORIGINS']).to.equal('https://a.example,https://b.example');
      });

      it('renders no monitoring objects, no retention job and no route unless asked', () => {
        expect(docs.filter((d) => d.apiVersion.startsWith('monitoring.coreos.com'))).to.deep.equal([]);
        expect(docs.filter((d) => d.metadata.labels?.['grafana_dashboard'])).to.deep.equal([]);
        expect(byKind(docs, 'CronJob')).to.deep.equal([]);
        expect(byKind(docs, 'HTTPRoute')).to.deep.equal([]);
        expect(config(docs)).to.not.have.property('RETENTION_DAYS');
      });
    });

    describe('the migration hook', () => {
      it('runs once per release as a pre-install,pre-upgrade Job, from the operator’s Secret', () => {
        const docs = render();
        const job = find(docs, 'Job', 'rel-falcon-migrate');
        expect(job.metadata.annotations!['helm.sh/hook']).to.equal('pre-install,pre-upgrade');
        const [c] = job.spec.template.spec.containers;
        expect(c.args).to.deep.equal(['services/persister/dist/migrate-main.js']);
        expect(envOf(c).get('DATABASE_URL')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'falcon-db', key: 'DATABASE_URL' });
        // Hooks run before the release's ServiceAccount exists.
        expect(job.spec.template.spec).to.not.have.property('serviceAccountName');
        expect(byKind(docs, 'Secret')).to.deep.equal([]);
      });

      it('gets its own hook Secret for a chart-owned URL, created first and deleted after success', () => {
        const docs = render(COMBINATIONS['chart-owned secrets']!);
        const job = find(docs, 'Job', 'rel-falcon-migrate');
        const secret = find(docs, 'Secret', 'rel-falcon-migrate');
        expect(Number(secret.metadata.annotations!['helm.sh/hook-weight'])).to.be.lessThan(Number(job.metadata.annotations!['helm.sh/hook-weight']));
        expect(secret.metadata.annotations!['helm.sh/hook-delete-policy']!.split(',')).to.have.members(['before-hook-creation', 'hook-succeeded']);
        expect(envOf(job.spec.template.spec.containers[0]).get('DATABASE_URL')?.valueFrom?.secretKeyRef?.name).to.equal('rel-falcon-migrate');
      });
    });

    it('restarts pods when a Secret or the config the chart renders changes (checksum annotations)', () => {
      const annotations = (args: string[]) => {
        const docs = render([...COMBINATIONS['chart-owned secrets']!, ...args]);
        return find(docs, 'Deployment', 'rel-falcon-query').spec.template.metadata.annotations as Record<string, string>;
      };
      const base = annotations([]);
      const newPassword = annotations(['--set', 'postgres.url=postgres://falcon:other@db:5432/falcon']);
      expect(newPassword['checksum/secret']).to.not.equal(base['checksum/secret']);
      expect(newPassword['checksum/config']).to.equal(base['checksum/config']);
      const newConfig = annotations(['--set', 'logLevel=debug']);
      expect(newConfig['checksum/config']).to.not.equal(base['checksum/config']);
      expect(newConfig['checksum/secret']).to.equal(base['checksum/secret']);
    });

    it('mounts the Postgres CA into every pod that uses Postgres, and only those', () => {
      const docs = render(['--set', 'postgres.ca.existingSecret=pg-ca', '--set', 'retention.days=7']);
      const users = workloads(docs).filter((d) => envOf(podSpecOf(d).containers[0]).has('DATABASE_URL'));
      expect(users.map((d) => d.metadata.name).sort()).to.deep.equal(['rel-falcon-migrate', 'rel-falcon-persister', 'rel-falcon-query', 'rel-falcon-retention']);
      for (const d of workloads(docs)) {
        const spec = podSpecOf(d);
        const mount = spec.containers[0].volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/etc/falcon/postgres-ca');
        if (!users.includes(d)) {
          expect(mount, d.metadata.name).to.equal(undefined);
          continue;
        }
        expect(mount, d.metadata.name).to.deep.include({ readOnly: true });
        const volume = spec.volumes.find((v: { name: string }) => v.name === mount.name);
        expect(volume.secret).to.deep.equal({ secretName: 'pg-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
      }
    });

    it('takes NATS credentials and TLS files from an existing Secret, per service when asked', () => {
      const docs = render([
        ...COMBINATIONS['tls and credentials']!,
        '--set', 'nats.auth.tlsCertKey=tls.crt', '--set', 'nats.auth.tlsKeyKey=tls.key',
        '--set', 'ingest.natsAuth.existingSecret=nats-ingest', '--set', 'ingest.natsAuth.userKey=user', '--set', 'ingest.natsAuth.passwordKey=password', '--set', 'ingest.natsAuth.credsKey=',
      ]);
      for (const service of ['persister', 'realtime']) {
        const c = container(docs, service);
        const env = envOf(c);
        expect(env.get('NATS_CREDS_FILE')?.value).to.equal('/etc/falcon/nats/falcon.creds');
        expect(env.get('NATS_TLS_CA_FILE')?.value).to.equal('/etc/falcon/nats/ca.crt');
        expect(env.get('NATS_TLS_CERT_FILE')?.value).to.equal('/etc/falcon/nats/tls.crt');
        expect(env.get('NATS_TLS_KEY_FILE')?.value).to.equal('/etc/falcon/nats/tls.key');
        expect(env.has('NATS_USER')).to.equal(false);
        const mount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/etc/falcon/nats');
        const volume = find(docs, 'Deployment', `rel-falcon-${service}`).spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
        expect(volume.secret.secretName).to.equal('nats-client');
      }
      const ingest = envOf(container(docs, 'ingest'));
      expect(ingest.get('NATS_USER')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'nats-ingest', key: 'user' });
      expect(ingest.get('NATS_PASSWORD')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'nats-ingest', key: 'password' });
      expect(ingest.get('NATS_TLS_CA_FILE')?.value).to.equal('/etc/falcon/nats/ca.crt');
      expect(ingest.has('NATS_CREDS_FILE')).to.equal(false);
      expect([...envOf(container(docs, 'query')).keys()].filter((k) => k.startsWith('NATS_'))).to.deep.equal([]);
      expect(refusal(['--set', 'nats.auth.credsKey=falcon.creds'])).to.include('no existingSecret holds it');
    });

    it('mounts the payload schema into ingest as a file from its own ConfigMap', () => {
      const docs = render(COMBINATIONS['payload schema']!);
      const c = container(docs, 'ingest');
      expect(envOf(c).get('INGEST_SCHEMA_FILE')?.value).to.equal('/etc/falcon/schema/payload.schema.json');
      const mount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/etc/falcon/schema');
      const volume = find(docs, 'Deployment', 'rel-falcon-ingest').spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
      const schema = find(docs, 'ConfigMap', volume.configMap.name);
      expect(JSON.parse(schema.data!['payload.schema.json']!)).to.deep.equal({ type: 'object', required: ['text'] });
      expect(Object.keys(config(docs))).to.not.include('payload.schema.json');
      for (const service of ['persister', 'query', 'realtime']) expect(envOf(container(docs, service)).has('INGEST_SCHEMA_FILE')).to.equal(false);
    });

    it('schedules each service as told: affinity, nodeSelector, tolerations, priority, spread, extra env and volumes', () => {
      const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['db'] }] }] } } };
      const spread = [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'x' } } }];
      const docs = render([
        '--set-json', `persister.affinity=${JSON.stringify(affinity)}`,
        '--set', 'persister.nodeSelector.pool=db',
        '--set-json', 'persister.tolerations=[{"key":"dedicated","operator":"Equal","value":"db","effect":"NoSchedule"}]',
        '--set', 'persister.priorityClassName=falcon-critical',
        '--set-json', `persister.topologySpreadConstraints=${JSON.stringify(spread)}`,
        '--set-json', 'persister.extraEnv=[{"name":"NODE_OPTIONS","value":"--max-old-space-size=512"}]',
        '--set-json', 'persister.extraVolumes=[{"name":"extra","emptyDir":{}}]',
        '--set-json', 'persister.extraVolumeMounts=[{"name":"extra","mountPath":"/extra"}]',
        '--set', 'persister.podAnnotations.team=data',
      ]);
      const spec = find(docs, 'Deployment', 'rel-falcon-persister').spec.template;
      expect(spec.spec.affinity).to.deep.equal(affinity);
      expect(spec.spec.nodeSelector).to.deep.equal({ pool: 'db' });
      expect(spec.spec.tolerations).to.deep.equal([{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }]);
      expect(spec.spec.priorityClassName).to.equal('falcon-critical');
      expect(spec.spec.topologySpreadConstraints).to.deep.equal(spread);
      expect(envOf(spec.spec.containers[0]).get('NODE_OPTIONS')?.value).to.equal('--max-old-space-size=512');
      expect(spec.spec.volumes).to.deep.include({ name: 'extra', emptyDir: {} });
      expect(spec.spec.containers[0].volumeMounts).to.deep.include({ name: 'extra', mountPath: '/extra' });
      expect(spec.metadata.annotations.team).to.equal('data');
      const ingest = find(docs, 'Deployment', 'rel-falcon-ingest').spec.template.spec;
      for (const key of ['affinity', 'nodeSelector', 'tolerations', 'priorityClassName']) expect(ingest, key).to.not.have.property(key);
    });

    describe('with KEDA on', () => {
      it('scales the persister on the right stream and consumer, read from NATS by its fully qualified name', () => {
        for (const namespace of ['falcon', 'team-a']) {
          const docs = render(['--set', 'persister.keda.enabled=true', '--set', `namespace=${namespace}`]);
          const names = falconNames(namespace);
          const [so] = byKind(docs, 'ScaledObject');
          expect(so!.spec.scaleTargetRef.name).to.equal('rel-falcon-persister');
          expect(so!.spec.triggers[0]).to.deep.include({ type: 'nats-jetstream' });
          expect(so!.spec.triggers[0].metadata).to.deep.equal({
            natsServerMonitoringEndpoint: 'nats.falcon.svc.cluster.local:8222',
            account: '$G',
            stream: names.stream,
            consumer: names.persisterConsumer,
            lagThreshold: '5000',
            activationLagThreshold: '0',
          });
          expect(byKind(docs, 'HorizontalPodAutoscaler')).to.have.length(0);
          expect(find(docs, 'Deployment', 'rel-falcon-persister').spec).to.not.have.property('replicas');
          expect(config(docs)['FALCON_NAMESPACE']).to.equal(namespace);
        }
        const elsewhere = render(['--set', 'persister.keda.enabled=true', '--set', 'nats.serviceNamespace=nats', '--set', 'clusterDomain=corp.local']);
        expect(byKind(elsewhere, 'ScaledObject')[0]!.spec.triggers[0].metadata.natsServerMonitoringEndpoint).to.equal('nats.nats.svc.corp.local:8222');
        expect(config(elsewhere)['NATS_URL']).to.equal('nats://nats.nats.svc.corp.local:4222');
        const headless = render(['--set', 'persister.keda.enabled=true', '--set', 'nats.monitoringEndpoint=nats-headless.nats.svc.cluster.local:8222']);
        expect(byKind(headless, 'ScaledObject')[0]!.spec.triggers[0].metadata.natsServerMonitoringEndpoint).to.equal('nats-headless.nats.svc.cluster.local:8222');
      });

      it('takes over the CPU HPA in one upgrade: transfer-hpa-ownership naming the HPA the previous release rendered', () => {
        const [hpa] = byKind(render(), 'HorizontalPodAutoscaler');
        const [so] = byKind(render(['--set', 'persister.keda.enabled=true']), 'ScaledObject');
        expect(so!.metadata.annotations!['scaledobject.keda.sh/transfer-hpa-ownership']).to.equal('true');
        expect(so!.spec.advanced.horizontalPodAutoscalerConfig.name).to.equal(hpa!.metadata.name);
        // The webhook only lets the transfer through for an HPA on the same target.
        expect(so!.spec.scaleTargetRef).to.deep.include({ kind: hpa!.spec.scaleTargetRef.kind, name: hpa!.spec.scaleTargetRef.name });
      });
    });

    it('with autoscaling off: the persister has replicas and no HPA', () => {
      const docs = render(['--set', 'persister.autoscaling.enabled=false', '--set', 'persister.replicaCount=3']);
      expect(byKind(docs, 'HorizontalPodAutoscaler')).to.have.length(0);
      expect(find(docs, 'Deployment', 'rel-falcon-persister').spec.replicas).to.equal(3);
    });

    describe('with the route on', () => {
      const text = renderText(COMBINATIONS['route on']!);
      const docs = render(COMBINATIONS['route on']!);
      const [route] = byKind(docs, 'HTTPRoute');
      type Rule = { matches: { method?: string; path: { type: string; value: string } }[]; backendRefs?: { name: string; port: number }[] };
      /** Gateway API precedence: Exact before the longest prefix; then rules with a method. */
      const ruleFor = (method: string, path: string): Rule | undefined => {
        const candidates = (route!.spec.rules as Rule[]).flatMap((rule) =>
          rule.matches
            .filter((m) => (m.method ?? method) === method)
            .filter((m) => (m.path.type === 'Exact' ? path === m.path.value : path.startsWith(m.path.value)))
            .map((m) => ({ rule, rank: [m.path.type === 'Exact' ? 1 : 0, m.path.value.length, m.method ? 1 : 0] })),
        );
        candidates.sort((a, b) => b.rank[0]! - a.rank[0]! || b.rank[1]! - a.rank[1]! || b.rank[2]! - a.rank[2]!);
        return candidates[0]?.rule;
      };
      const backendFor = (method: string, path: string) => ruleFor(method, path)?.backendRefs?.[0];

      it('sends POST and GET /api/messages to different services under one host, and /openapi.json to query', () => {
        expect(backendFor('POST', '/api/messages')).to.deep.equal({ name: 'rel-falcon-ingest', port: 8081 });
        expect(backendFor('GET', '/api/messages')).to.deep.equal({ name: 'rel-falcon-query', port: 8082 });
        expect(backendFor('GET', '/api/messages/0193f3c6-5a7e-7cc2-9a4b-2f3d1c0e9b11')?.name).to.equal('rel-falcon-query');
        expect(backendFor('GET', '/openapi.json')?.name).to.equal('rel-falcon-query');
        for (const path of ['/', '/ws', '/sse', '/app.js']) expect(backendFor('GET', path)?.name, path).to.equal('rel-falcon-realtime');
        expect(config(docs)['REALTIME_PUBLIC_INGEST_URL']).to.equal('https://falcon.example.com');
        expect(config(docs)['CORS_ALLOW_ORIGINS']).to.equal('https://falcon.example.com');
        // The Gateway is the one proxy whose X-Forwarded-For hop ingest may trust.
        expect(config(docs)['INGEST_TRUSTED_PROXY_HOPS']).to.equal('1');
        expect(config(render([]))['INGEST_TRUSTED_PROXY_HOPS']).to.equal('0');
        expect(config(render([...COMBINATIONS['route on']!, '--set', 'ingest.trustedProxyHops=2']))['INGEST_TRUSTED_PROXY_HOPS']).to.equal('2');
      });

      it('keeps /ws and /sse open as long as the client stays (no request timeout), unless told otherwise', () => {
        type Timed = Rule & { timeouts?: { request?: string } };
        for (const path of ['/ws', '/sse']) expect((ruleFor('GET', path) as Timed).timeouts, path).to.deep.equal({ request: '0s' });
        expect((ruleFor('GET', '/') as Timed).timeouts).to.equal(undefined);
        const custom = byKind(render([...COMBINATIONS['route on']!, '--set', 'route.streamTimeout=1h']), 'HTTPRoute')[0]!;
        const sse = (custom.spec.rules as Timed[]).find((r) => r.matches.some((m) => m.path.value === '/sse'));
        expect(sse?.timeouts).to.deep.equal({ request: '1h' });
        expect(config(docs)['REALTIME_SSE_HEARTBEAT_SECONDS']).to.equal('15');
      });

      it('never forwards /metrics, and targets only the services’ public ports', () => {
        for (const path of ['/metrics', '/metrics/']) {
          const rule = ruleFor('GET', path);
          expect(rule, path).to.not.equal(undefined);
          expect(rule!.backendRefs, path).to.equal(undefined);
        }
        const ports = (route!.spec.rules as Rule[]).flatMap((r) => (r.backendRefs ?? []).map((b) => b.port));
        expect(ports.every((p) => [8080, 8081, 8082].includes(p))).to.equal(true);
      });

      it('says that method matching is an Extended feature of the Gateway API', () => {
        expect(text).to.match(/Method matching is an Extended feature/);
      });
    });

    it('with chart-owned secrets: the JWT secret and the database URL in Secrets the chart owns', () => {
      const docs = render(COMBINATIONS['chart-owned secrets']!);
      expect(find(docs, 'Secret', 'rel-falcon-auth').stringData).to.deep.equal({ AUTH_JWT_SECRET: 'chart-test-secret-0123456789abcdefghij' });
      expect(find(docs, 'Secret', 'rel-falcon-database').stringData).to.deep.equal({ DATABASE_URL: 'postgres://falcon:pw@db:5432/falcon' });
      expect(envOf(container(docs, 'ingest')).get('AUTH_JWT_SECRET')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'rel-falcon-auth', key: 'AUTH_JWT_SECRET' });
      const page = render(['--set', 'auth.pageTokenKey=page-token']);
      expect(envOf(container(page, 'realtime')).get('REALTIME_PAGE_TOKEN')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'falcon-auth', key: 'page-token' });
      expect(envOf(container(page, 'ingest')).has('REALTIME_PAGE_TOKEN')).to.equal(false);
    });

    it('with auth off: no auth settings reach any service', () => {
      const docs = render(COMBINATIONS['auth off']!);
      for (const service of SERVICES) expect([...envOf(container(docs, service)).keys()].filter((k) => k.startsWith('AUTH_'))).to.deep.equal([]);
    });

    it('with network policies off: none rendered', () => {
      expect(byKind(render([...COMBINATIONS['network policies off']!, '--set', 'retention.days=7']), 'NetworkPolicy')).to.have.length(0);
    });

    it('fences the migration Job and the retention CronJob: nothing in, DNS and Postgres out', () => {
      const docs = render(['--set', 'retention.days=7', '--set-json', 'networkPolicy.postgresTo=[{"ipBlock":{"cidr":"10.1.2.0/24"}}]']);
      for (const [workload, component] of [[find(docs, 'Job', 'rel-falcon-migrate'), 'migrate'], [find(docs, 'CronJob', 'rel-falcon-retention'), 'retention']] as const) {
        const policy = find(docs, 'NetworkPolicy', `rel-falcon-${component}`);
        const podLabels = (workload.kind === 'CronJob' ? workload.spec.jobTemplate.spec.template : workload.spec.template).metadata.labels;
        for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels)) expect(podLabels[k], `${component} ${k}`).to.equal(v);
        expect(policy.spec.podSelector.matchLabels['app.kubernetes.io/component']).to.equal(component);
        expect(policy.spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
        expect(policy.spec.ingress, component).to.deep.equal([]);
        expect(policy.spec.egress, component).to.deep.equal([
          { ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
          { ports: [{ port: 5432, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.1.2.0/24' } }] },
        ]);
      }
      // Pre-install hooks run before the release's own objects exist: the migration's policy is
      // a hook too, created before the Job, and removed with it.
      const job = find(docs, 'Job', 'rel-falcon-migrate').metadata.annotations!;
      const policy = find(docs, 'NetworkPolicy', 'rel-falcon-migrate').metadata.annotations!;
      expect(policy['helm.sh/hook']).to.equal(job['helm.sh/hook']);
      expect(Number(policy['helm.sh/hook-weight'])).to.be.lessThan(Number(job['helm.sh/hook-weight']));
      expect(policy['helm.sh/hook-delete-policy']!.split(',')).to.have.members(['before-hook-creation', 'hook-succeeded']);
      expect(find(docs, 'NetworkPolicy', 'rel-falcon-retention').metadata.annotations).to.equal(undefined);
    });

    it('with retention on: a CronJob runs retention-main.js with RETENTION_DAYS, one run at a time', () => {
      const docs = render(COMBINATIONS['retention on']!);
      const [cron, ...others] = byKind(docs, 'CronJob');
      expect(others).to.have.length(0);
      expect(cron!.spec.concurrencyPolicy).to.equal('Forbid');
      const [c] = podSpecOf(cron!).containers;
      expect([c.command, c.args]).to.deep.equal([['node'], ['services/persister/dist/retention-main.js']]);
      expect(envOf(c).get('RETENTION_DAYS')?.value).to.equal('30');
      expect(envOf(c).get('DATABASE_URL')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'falcon-db', key: 'DATABASE_URL' });
      // Only the CronJob reads it: in the services' ConfigMap it would restart every pod for nothing.
      expect(config(docs)).to.not.have.property('RETENTION_DAYS');
    });

    describe('with monitoring on', () => {
      const docs = render(MONITORING);

      it('scrapes the ops port with a ServiceMonitor or a PodMonitor', () => {
        const [sm] = byKind(docs, 'ServiceMonitor');
        expect(sm!.spec.endpoints).to.deep.equal([{ port: 'ops', path: '/metrics', interval: '30s', honorLabels: true }]);
        expect(sm!.spec.selector.matchLabels).to.deep.equal({ 'app.kubernetes.io/name': 'falcon', 'app.kubernetes.io/instance': 'rel' });
        const [pm] = byKind(docs, 'PodMonitor');
        expect(pm!.spec.podMetricsEndpoints[0]).to.include({ port: 'ops', path: '/metrics' });
      });

      const rule = () => byKind(docs, 'PrometheusRule')[0]!;
      const exprs = () => [
        ...rule().spec.groups.flatMap((g: { rules: { expr: string }[] }) => g.rules.map((r) => r.expr)),
        ...JSON.parse(byKind(docs, 'ConfigMap').find((d) => d.metadata.name === 'rel-falcon-dashboard')!.data!['falcon.json']!).panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr)),
      ];

      it('alerts on lag growing, dead letters, 5xx, readiness flapping and slow-client disconnects', () => {
        const alerts = rule().spec.groups.flatMap((g: { rules: { alert: string }[] }) => g.rules.map((r) => r.alert));
        expect(alerts).to.have.members(['FalconConsumerLagGrowing', 'FalconDeadLetters', 'FalconIngestErrors', 'FalconQueryErrors', 'FalconReadinessFlapping', 'FalconSlowClientDisconnects']);
        const text = rule().spec.groups[0].rules.map((r: { expr: string }) => r.expr).join('\n');
        expect(text).to.include('consumer_name="falcon-persister"').and.include('outcome="dead_lettered"').and.include('kube_pod_status_ready');
        const errors = (alert: string) => rule().spec.groups[0].rules.find((r: { alert: string }) => r.alert === alert).expr as string;
        expect(errors('FalconIngestErrors')).to.include('falcon_ingest_requests_total').and.include('outcome=~"error|unavailable"');
        // Probes and scrapes are answers too; they must not dilute the API's 5xx share.
        expect(errors('FalconQueryErrors')).to.include('falcon_query_requests_total').and.include('outcome=~"error|unavailable"').and.include('route!~"/healthz|/readyz|/metrics"');
      });

      it('uses only metric names the services export (or the NATS exporter and kube-state-metrics do)', () => {
        const sources = SERVICES.concat('shared').flatMap((s) => {
          const dir = join(ROOT, 'services', s, 'src');
          return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(dir, f), 'utf8'));
        });
        const exported = new Set(sources.flatMap((text) => [...text.matchAll(/name: '(falcon_[a-z_]+)'/g)].map((m) => m[1]!)));
        const external = new Set(['nats_consumer_num_pending', 'kube_pod_status_ready']);
        const functions = new Set(['sum', 'rate', 'increase', 'max', 'deriv', 'changes', 'histogram_quantile', 'by', 'and', 'le', 'label_values']);
        const used = new Set(exprs().flatMap((e) => [...e.replace(/"[^"]*"/g, '').replace(/\[[^\]]*\]/g, '').replace(/\{[^}]*\}/g, '').matchAll(/[a-z_]+[a-z0-9_]*/g)].map((m) => m[0])));
        for (const name of used) {
          if (functions.has(name) || name === 'pod' || name === 'source' || name === 'outcome' || name === 'consumer_name') continue;
          const base = name.replace(/_(bucket|sum|count)$/, '');
          expect(exported.has(base) || external.has(name), name).to.equal(true);
        }
        expect(used).to.include('falcon_ingest_requests_total').and.include('falcon_query_requests_total').and.include('falcon_persister_messages_total');
      });

      it('ships a Grafana dashboard the sidecar picks up: rates, lag, latency, clients, errors', () => {
        const cm = find(docs, 'ConfigMap', 'rel-falcon-dashboard');
        expect(cm.metadata.labels!['grafana_dashboard']).to.equal('1');
        const dashboard = JSON.parse(cm.data!['falcon.json']!);
        const titles = dashboard.panels.map((p: { title: string }) => p.title).join('\n');
        for (const topic of [/accepted/i, /persisted/i, /lag/i, /latency/i, /clients/i, /errors/i]) expect(titles).to.match(topic);
        // End-to-end: from receivedAt to the frame handed to the gateway's fan-out, as quantiles.
        const latency = dashboard.panels.find((p: { title: string }) => /end-to-end delivery latency/i.test(p.title));
        expect(latency.targets.map((t: { expr: string }) => t.expr)).to.include('histogram_quantile(0.99, sum by (le) (rate(falcon_realtime_delivery_lag_seconds_bucket{namespace="$namespace"}[5m])))');
      });
    });

    it('installs with the README’s own command and Secrets', () => {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\\\n\s*/g, ' ');
      const install = /^helm install (falcon \.\/helm\/falcon .*)$/m.exec(readme)?.[1];
      expect(install, 'README has a helm install line').to.be.a('string');
      const args = install!.split(/\s+/).map((a) => (a === './helm/falcon' ? CHART : a));
      const docs = parseAllDocuments(run(['template', ...args])).map((d) => d.toJS() as Doc).filter(Boolean);
      const created = [...readme.matchAll(/kubectl -n falcon create secret generic (\S+)\s+--from-(?:literal|file)=([^=]+)=/g)].map((m) => `${m[1]}/${m[2]}`);
      const referenced = new Set(
        podSpecs(docs).flatMap(({ spec }) => [
          ...spec.containers.flatMap((c: { env?: Env[] }) => (c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`] : []))),
          ...(spec.volumes ?? []).flatMap((v: { secret?: { secretName: string; items?: { key: string }[] } }) => (v.secret?.items ?? []).map((i) => `${v.secret!.secretName}/${i.key}`)),
        ]),
      );
      expect([...referenced].sort()).to.deep.equal([...created].sort());
      expect(find(docs, 'ConfigMap', 'falcon-config').data!['NATS_URL']).to.equal('nats://nats.nats.svc.cluster.local:4222');
      expect(find(docs, 'HorizontalPodAutoscaler', 'falcon-persister').spec.scaleTargetRef.name).to.equal('falcon-persister');
    });

    describe('helm test', () => {
      const text = renderText();
      const docs = render();
      const pod = find(docs, 'Pod', 'rel-falcon-test');

      it('is a test hook Pod running the round-trip script with the Falcon image', () => {
        expect(pod.metadata.annotations!['helm.sh/hook']).to.equal('test');
        const [c] = pod.spec.containers;
        expect(c.image).to.equal('registry.example.com/falcon:0.1.0');
        expect([c.command, c.args]).to.deep.equal([['node'], ['/etc/falcon/test/roundtrip.mjs']]);
        const env = envOf(c);
        expect(env.get('INGEST_URL')?.value).to.equal('http://rel-falcon-ingest:8081');
        expect(env.get('QUERY_URL')?.value).to.equal('http://rel-falcon-query:8082');
        expect(env.get('REALTIME_URL')?.value).to.equal('http://rel-falcon-realtime:8080');
        expect(env.get('AUTH_JWT_SECRET')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'falcon-auth', key: 'AUTH_JWT_SECRET' });
        const script = find(docs, 'ConfigMap', 'rel-falcon-test');
        expect(script.data!['roundtrip.mjs']).to.equal(readFileSync(join(CHART, 'files', 'roundtrip.mjs'), 'utf8').trimEnd());
      });

      it("lives under templates/tests/, which Tilt's helm() leaves out", () => {
        const sources = text.split('\n---\n').filter((d) => /kind: Pod\n/.test(d)).map((d) => /# Source: (\S+)/.exec(d)?.[1]);
        expect(sources).to.deep.equal(['falcon/templates/tests/roundtrip.yaml']);
      });
    });
  });
}

describe('Tiltfile, deploy/ and README', () => {
  const tiltfile = readFileSync(join(ROOT, 'Tiltfile'), 'utf8');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const natsValues = parse(readFileSync(join(ROOT, 'deploy', 'nats-values.yaml'), 'utf8'));

  it('ships deploy/ manifests that are schema-valid too', async () => {
    for (const file of ['postgres.yaml', 'nats-users.dev.yaml']) {
      const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', file), 'utf8')).map((d) => d.toJS() as Doc);
      for (const doc of docs) await validate(doc);
    }
  });

  it('pins the NATS chart at 2.x and redeploys NATS when its values file changes', () => {
    const version = /NATS_CHART_VERSION = '([^']+)'/.exec(tiltfile)?.[1];
    expect(version).to.match(/^2\.\d+\.\d+$/);
    expect(tiltfile).to.include("'--version=' + NATS_CHART_VERSION").and.include("deps=['deploy/nats-values.yaml']");
    expect(readFileSync(join(ROOT, 'deploy', 'nats-values.yaml'), 'utf8')).to.include(`--version ${version}`).and.include('chart 2.x');
  });

  it('keeps the migration from re-running on every save, and sends web/ edits to the gateway', () => {
    expect(tiltfile).to.match(/k8s_resource\('falcon-migrate'[^\n]*trigger_mode=TRIGGER_MODE_MANUAL/);
    expect(tiltfile).to.include("sync('web', '/app/web')").and.include("run('touch /app/services/realtime/dist/main.js', trigger=['web'])");
  });

  it('uses the NATS chart 2.x layout: JetStream, monitoring on the Service, and the exporter', () => {
    expect(natsValues.config.jetstream.enabled).to.equal(true);
    expect(natsValues.config.monitor).to.deep.include({ enabled: true, port: 8222 });
    expect(natsValues.service.ports.monitor.enabled).to.equal(true);
    expect(natsValues.promExporter.enabled).to.equal(true);
  });

  it('lets only ingest publish to the message subject', () => {
    const subject = falconNames('falcon').subject;
    const users = natsValues.config.merge.authorization.users as { user: string; permissions: { publish: { allow: string[]; deny?: string[] } } }[];
    const publishers = users.filter((u) => u.permissions.publish.allow.includes(subject) || u.permissions.publish.allow.includes('>'));
    expect(publishers.map((u) => u.user)).to.deep.equal(['falcon-ingest']);
    for (const u of users.filter((x) => x.user !== 'falcon-ingest')) expect(u.permissions.publish.deny).to.include(subject);
  });

  it('gives the dev values what the chart requires, and a development JWT secret', () => {
    const dev = parse(readFileSync(join(ROOT, 'deploy', 'falcon-values.dev.yaml'), 'utf8'));
    expect(dev.auth.jwtSecret).to.be.a('string').with.length.of.at.least(32);
    expect(tiltfile).to.include("'FALCON_TOKEN': e2e_token").and.include('scripts/dev-token.mjs').and.include("'auth.pageToken=' + page_token");
    // Every visitor of the page can read its token: read and subscribe only, never write.
    expect(/page_token = .*dev-token\.mjs', dev_secret, '([^']*)'/.exec(tiltfile)?.[1]).to.equal('messages:read messages:subscribe');
  });

  it('shows a multi-architecture build in the README', () => {
    expect(readme).to.include('docker buildx build --platform linux/amd64,linux/arm64');
  });
});
