/**
 * Runs a container of the rendered chart with podman the way the kubelet would run it: the
 * command and args, env (values, ConfigMap and Secret references resolved from the same
 * render), user and group, read-only root filesystem, capabilities, no privilege escalation,
 * CPU and memory limits, emptyDir volumes as tmpfs and ConfigMap/Secret volumes as read-only
 * files. Everything comes from `helm template` output; the only change is where ports land:
 * with host networking, every container port is moved to a free local port through the env
 * variable that carries it (PORT, OPS_PORT, ...).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { freePort, ROOT } from '../../scripts/stack.js';
import { PODMAN_QUIRKS } from '../../scripts/image/podman.js';

export interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export interface Probe {
  path: string;
  port: number;
  periodSeconds: number;
  failureThreshold: number;
}

/** One container of a rendered pod, ready to hand to `podman run`. */
export interface PodContainer {
  component: string;
  image: string;
  /** podman run arguments, up to and excluding the image. */
  runArgs: string[];
  /** The container's args, after the image. */
  args: string[];
  env: Record<string, string>;
  /** Container port name -> the local port it was moved to. */
  ports: Record<string, number>;
  startup?: Probe;
  liveness?: Probe;
  readiness?: Probe;
  preStop?: string[];
  terminationGracePeriodSeconds: number;
  activeDeadlineSeconds?: number;
}

export const CHART = join(ROOT, 'helm', 'falcon');

export function helmBinary(): string {
  return execFileSync(join(ROOT, 'scripts', 'ensure-helm.sh'), { encoding: 'utf8' }).trim();
}

export function renderChart(args: string[]): Doc[] {
  const out = execFileSync(helmBinary(), ['template', 'falcon', CHART, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc)
    .filter(Boolean);
}

const component = (doc: Doc) => doc.metadata.labels?.['app.kubernetes.io/component'] ?? doc.metadata.name;

/** The migration hook Job and the Deployments, by component. */
export function workloads(docs: Doc[]): { migrate: Doc; services: Map<string, Doc> } {
  const migrate = docs.find((d) => d.kind === 'Job' && d.metadata.annotations?.['helm.sh/hook']?.includes('pre-install'));
  if (!migrate) throw new Error('the chart rendered no pre-install hook Job (the migration)');
  const services = new Map(docs.filter((d) => d.kind === 'Deployment').map((d) => [component(d), d]));
  return { migrate, services };
}

function decoded(doc: Doc): Record<string, string> {
  const data: Record<string, string> = { ...doc.stringData };
  if (doc.kind === 'Secret') for (const [k, v] of Object.entries(doc.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
  else Object.assign(data, doc.data);
  return data;
}

function source(docs: Doc[], kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!doc) throw new Error(`${kind} ${name} is referenced but not rendered by the chart (an existing object is not emulated here)`);
  return decoded(doc);
}

function resolveEnv(container: any, docs: Doc[], podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) for (const [k, v] of Object.entries(source(docs, 'ConfigMap', from.configMapRef.name))) env[prefix + k] = v;
    if (from.secretRef) for (const [k, v] of Object.entries(source(docs, 'Secret', from.secretRef.name))) env[prefix + k] = v;
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = source(docs, 'ConfigMap', e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key]!;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = source(docs, 'Secret', e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key]!;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = 'default';
    else throw new Error(`env ${e.name}: ${JSON.stringify(e.valueFrom)} is not emulated`);
    if (env[e.name] === undefined) throw new Error(`env ${e.name}: the referenced key is missing`);
  }
  return env;
}

/** Kubernetes quantities to podman's units. */
export function cpus(quantity: string | number): string {
  const q = String(quantity);
  return q.endsWith('m') ? String(Number(q.slice(0, -1)) / 1000) : q;
}
export function bytes(quantity: string | number): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]i?|[kmgt])?$/.exec(String(quantity));
  if (!m) throw new Error(`unsupported quantity ${quantity}`);
  const units: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * (m[2] ? units[m[2]]! : 1));
}

function probe(spec: any, ports: Record<string, number>, containerPorts: any[]): Probe | undefined {
  if (!spec) return undefined;
  if (!spec.httpGet) throw new Error(`only httpGet probes are emulated: ${JSON.stringify(spec)}`);
  const port = spec.httpGet.port;
  const name = typeof port === 'string' ? port : containerPorts.find((p) => p.containerPort === port)?.name;
  const local = ports[name];
  if (local === undefined) throw new Error(`probe port ${port} is not a declared container port`);
  return { path: spec.httpGet.path, port: local, periodSeconds: spec.periodSeconds ?? 10, failureThreshold: spec.failureThreshold ?? 3 };
}

/**
 * The podman arguments for the first container of `workload`'s pod template. `name` becomes
 * the container's name; `labels` are added so a test can find and remove what it started;
 * ConfigMap and Secret volumes are written as files under `volumeDir` (the caller removes it).
 */
export async function podContainer(workload: Doc, docs: Doc[], name: string, labels: Record<string, string>, volumeDir: string): Promise<PodContainer> {
  const pod = workload.spec.template.spec;
  const container = pod.containers[0];
  const env = resolveEnv(container, docs, name);

  // Host networking: move each declared port to a free one, through the env var carrying it.
  const ports: Record<string, number> = {};
  for (const p of container.ports ?? []) {
    const carriers = Object.keys(env).filter((k) => env[k] === String(p.containerPort));
    if (carriers.length === 0) throw new Error(`${name}: no env variable carries container port ${p.containerPort} (${p.name}); it cannot be moved`);
    const local = await freePort();
    for (const k of carriers) env[k] = String(local);
    ports[p.name ?? String(p.containerPort)] = local;
  }

  const sc = { ...pod.securityContext, ...container.securityContext };
  const args: string[] = ['--name', name, ...PODMAN_QUIRKS];
  for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
  if (sc.runAsUser !== undefined) args.push('--user', sc.runAsGroup !== undefined ? `${sc.runAsUser}:${sc.runAsGroup}` : String(sc.runAsUser));
  if (sc.fsGroup !== undefined) args.push('--group-add', String(sc.fsGroup));
  // podman's --read-only would add its own tmpfs on /tmp, /var/tmp and /run; only the pod's
  // volumes may be writable.
  if (sc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  if (sc.seccompProfile?.type === 'Unconfined') args.push('--security-opt', 'seccomp=unconfined');
  if (sc.privileged) throw new Error(`${name}: privileged containers are not emulated`);

  const limits = container.resources?.limits ?? {};
  if (limits.cpu !== undefined) args.push('--cpus', cpus(limits.cpu));
  if (limits.memory !== undefined) args.push('--memory', String(bytes(limits.memory)), '--memory-swap', String(bytes(limits.memory)));

  const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (!volume) throw new Error(`${name}: volumeMount ${mount.name} has no volume`);
    if (volume.emptyDir) {
      const size = volume.emptyDir.sizeLimit ? `,size=${bytes(volume.emptyDir.sizeLimit)}` : '';
      args.push('--tmpfs', `${mount.mountPath}:rw,mode=1777${size}`);
    } else if (volume.configMap || volume.secret) {
      const data = volume.configMap ? source(docs, 'ConfigMap', volume.configMap.name) : source(docs, 'Secret', volume.secret.secretName);
      const items: { key: string; path: string }[] = (volume.configMap ?? volume.secret).items ?? Object.keys(data).map((key) => ({ key, path: key }));
      const dir = join(volumeDir, name, mount.name);
      for (const item of items) {
        if (data[item.key] === undefined) throw new Error(`${name}: volume ${mount.name} key ${item.key} is missing`);
        mkdirSync(dirname(join(dir, item.path)), { recursive: true });
        writeFileSync(join(dir, item.path), data[item.key]!, { mode: 0o644 });
      }
      const host = mount.subPath ? join(dir, mount.subPath) : dir;
      args.push('--volume', `${host}:${mount.mountPath}:ro`);
    } else {
      throw new Error(`${name}: volume ${mount.name} (${Object.keys(volume).join(', ')}) is not emulated`);
    }
  }

  if (container.workingDir) args.push('--workdir', container.workingDir);
  if (container.command) args.push('--entrypoint', JSON.stringify(container.command));
  for (const [k, v] of Object.entries(env)) args.push('--env', `${k}=${v}`);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  args.push('--stop-timeout', String(grace));

  return {
    component: component(workload),
    image: container.image,
    runArgs: args,
    args: container.args ?? [],
    env,
    ports,
    startup: probe(container.startupProbe, ports, container.ports ?? []),
    liveness: probe(container.livenessProbe, ports, container.ports ?? []),
    readiness: probe(container.readinessProbe, ports, container.ports ?? []),
    preStop: container.lifecycle?.preStop?.exec?.command,
    terminationGracePeriodSeconds: grace,
    activeDeadlineSeconds: workload.spec.activeDeadlineSeconds,
  };
}
