{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "falcon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, unless the release name already contains the chart name. */}}
{{- define "falcon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "falcon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a Deployment, so nothing version-dependent. */}}
{{- define "falcon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "falcon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "falcon.labels" -}}
helm.sh/chart: {{ include "falcon.chart" . }}
{{ include "falcon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: falcon
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels and selector labels of one component: dict "root" $ "name" "ingest". */}}
{{- define "falcon.componentLabels" -}}
{{ include "falcon.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "falcon.componentSelectorLabels" -}}
{{ include "falcon.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "falcon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "falcon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "falcon.image" -}}
{{- $repo := required "image.repository is required: build the image from the repository's Dockerfile, push it to a registry you control and set image.repository (and image.tag)" .Values.image.repository }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret that holds DATABASE_URL: the operator's, or the one this chart makes. */}}
{{- define "falcon.databaseSecretName" -}}
{{- default (printf "%s-database" (include "falcon.fullname" .)) .Values.postgres.existingSecret }}
{{- end }}

{{/* Which services talk to which dependency. */}}
{{- define "falcon.usesNats" -}}
{{- if has . (list "ingest" "persister" "realtime") }}true{{ end }}
{{- end }}
{{- define "falcon.usesDatabase" -}}
{{- if has . (list "persister" "query") }}true{{ end }}
{{- end }}

{{/* True when an autoscaler (HPA or KEDA) owns the replica count of a component. */}}
{{- define "falcon.autoscaled" -}}
{{- $v := index .root.Values .name }}
{{- if or $v.autoscaling.enabled (and (eq .name "persister") $v.keda.enabled) }}true{{ end }}
{{- end }}

{{/* The HPA is rendered unless KEDA manages the persister (they would fight). */}}
{{- define "falcon.hpaEnabled" -}}
{{- $v := index .root.Values .name }}
{{- if and $v.autoscaling.enabled (not (and (eq .name "persister") $v.keda.enabled)) }}true{{ end }}
{{- end }}

{{- define "falcon.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "falcon.databaseSecretName" . }}
      key: {{ .Values.postgres.secretKey }}
{{- end }}

{{/* The database is required: an operator's Secret, or (development) a URL the chart stores. */}}
{{- define "falcon.checkDatabase" -}}
{{- if not (or .Values.postgres.existingSecret .Values.postgres.url) }}
{{- fail "postgres.existingSecret is required: create a Secret with the connection string (postgres://user:password@host:5432/falcon?sslmode=verify-full&sslrootcert=/etc/falcon/postgres-ca/ca.crt) under key postgres.secretKey; for development only, postgres.url puts one in a Secret the chart owns" }}
{{- end }}
{{- end }}

{{/* The Postgres CA Secret, mounted where DATABASE_URL's sslrootcert points. */}}
{{- define "falcon.postgresCaMount" -}}
{{- if .Values.postgres.ca.existingSecret }}
- name: postgres-ca
  mountPath: /etc/falcon/postgres-ca
  readOnly: true
{{- end }}
{{- end }}
{{- define "falcon.postgresCaVolume" -}}
{{- if .Values.postgres.ca.existingSecret }}
- name: postgres-ca
  secret:
    secretName: {{ .Values.postgres.ca.existingSecret }}
    items:
      - key: {{ .Values.postgres.ca.key }}
        path: ca.crt
{{- end }}
{{- end }}

{{/* Integers stay integers: YAML numbers reach templates as float64 (33554432 would print as 3.3554432e+07). */}}
{{- define "falcon.int" -}}
{{- . | int64 | toString | quote }}
{{- end }}

{{/* A plain value as an env string; whole floats (how YAML numbers arrive) print as integers. */}}
{{- define "falcon.scalar" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . | toString | quote }}
{{- else }}{{ toString . | quote }}{{ end }}
{{- end }}

{{/* Fully qualified name of the NATS Service, resolvable from any namespace (KEDA's operator
runs in its own). */}}
{{- define "falcon.natsHost" -}}
{{- printf "%s.%s.svc.%s" .Values.nats.serviceName (default .Release.Namespace .Values.nats.serviceNamespace) .Values.clusterDomain }}
{{- end }}
{{- define "falcon.natsUrl" -}}
{{- default (printf "nats://%s:%d" (include "falcon.natsHost" .) (int .Values.nats.port)) .Values.nats.url }}
{{- end }}
{{- define "falcon.natsMonitoringEndpoint" -}}
{{- default (printf "%s:%d" (include "falcon.natsHost" .) (int .Values.nats.monitorPort)) .Values.nats.monitoringEndpoint }}
{{- end }}

{{/* nats.auth with the service's own natsAuth on top: dict "root" $ "name" "ingest". */}}
{{- define "falcon.natsAuth" -}}
{{- $v := index .root.Values .name }}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.nats.auth) (default dict $v.natsAuth)) }}
{{- end }}

{{/* NATS_* env of one service, from the (merged) auth settings. */}}
{{- define "falcon.natsEnv" -}}
{{- $a := include "falcon.natsAuth" . | fromYaml }}
{{- $keys := list "userKey" "passwordKey" "tokenKey" "credsKey" "nkeySeedKey" "tlsCaKey" "tlsCertKey" "tlsKeyKey" }}
{{- if not $a.existingSecret }}
{{- range $keys }}
{{- if index $a . }}
{{- fail (printf "nats.auth.%s (or %s.natsAuth.%s) is set but no existingSecret holds it" . $.name .) }}
{{- end }}
{{- end }}
{{- else }}
{{- range $env, $key := dict "NATS_USER" "userKey" "NATS_PASSWORD" "passwordKey" "NATS_TOKEN" "tokenKey" }}
{{- with index $a $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $a.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- range $env, $key := dict "NATS_CREDS_FILE" "credsKey" "NATS_NKEY_SEED_FILE" "nkeySeedKey" "NATS_TLS_CA_FILE" "tlsCaKey" "NATS_TLS_CERT_FILE" "tlsCertKey" "NATS_TLS_KEY_FILE" "tlsKeyKey" }}
{{- with index $a $key }}
- name: {{ $env }}
  value: /etc/falcon/nats/{{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Upper bound of a component's replicas: the autoscaler's maximum, else replicaCount. */}}
{{- define "falcon.maxReplicas" -}}
{{- $v := index .root.Values .name }}
{{- if and (eq .name "persister") $v.keda.enabled }}{{ $v.keda.maxReplicaCount | int }}
{{- else if $v.autoscaling.enabled }}{{ $v.autoscaling.maxReplicas | int }}
{{- else }}{{ $v.replicaCount | int }}{{ end }}
{{- end }}

{{/* Refuses a release whose pools could exceed Postgres' max_connections at full scale:
every persister and query replica at its autoscaler's maximum plus one surge pod
(maxSurge 1), each with PG_POOL_MAX connections, plus the migration and retention jobs. */}}
{{- define "falcon.checkConnections" -}}
{{- $pg := .Values.postgres }}
{{- if gt (int $pg.maxConnections) 0 }}
{{- $total := 2 }}
{{- range $name := list "persister" "query" }}
{{- $v := index $.Values $name }}
{{- $total = add $total (mul (add1 (include "falcon.maxReplicas" (dict "root" $ "name" $name) | int)) (int $v.poolMax)) }}
{{- end }}
{{- $budget := sub (int $pg.maxConnections) (int $pg.reservedConnections) }}
{{- if gt (int $total) (int $budget) }}
{{- fail (printf "Postgres connections at full scale (%d = (persister max replicas + 1) x persister.poolMax + (query max replicas + 1) x query.poolMax + 2) exceed postgres.maxConnections - postgres.reservedConnections (%d): lower the pools or the autoscalers' maximum, or raise max_connections (or put PgBouncer in front and say so in postgres.maxConnections)" (int $total) (int $budget)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The persister's memory limit: explicit, or sized from what it can hold in flight. */}}
{{- define "falcon.persisterMemoryLimit" -}}
{{- $p := .Values.persister }}
{{- if and $p.resources.limits $p.resources.limits.memory }}{{ $p.resources.limits.memory }}
{{- else }}
{{- $inFlight := mul (add (int $p.concurrency) 3) (int $p.batchSize) (int .Values.ingest.maxBytes) (int $p.memory.bytesFactor) }}
{{- printf "%dMi" (add (int $p.memory.baseMemoryMi) (div (add $inFlight 1048575) 1048576)) }}
{{- end }}
{{- end }}

{{/* CORS origins for ingest and query: explicit, or the page's public URL. */}}
{{- define "falcon.publicUrl" -}}
{{- if .Values.publicUrl }}{{ .Values.publicUrl }}
{{- else if .Values.route.enabled }}{{ .Values.route.publicUrl }}
{{- else }}{{ printf "http://127.0.0.1:%d" (int .Values.realtime.port) }}{{ end }}
{{- end }}
{{- define "falcon.corsOrigins" -}}
{{- $origins := default (include "falcon.publicUrl" .) .Values.cors.allowOrigins }}
{{- if has "*" (splitList "," (nospace $origins)) }}
{{- fail "cors.allowOrigins must list origins: `*` is for the local stack only" }}
{{- end }}
{{- $origins }}
{{- end }}

{{/* Auth: on by default, and then it needs a key to verify tokens with. */}}
{{- define "falcon.authSecretName" -}}
{{- default (printf "%s-auth" (include "falcon.fullname" .)) .Values.auth.existingSecret }}
{{- end }}
{{- define "falcon.checkAuth" -}}
{{- $a := .Values.auth }}
{{- if and $a.enabled (not (or $a.jwtSecret $a.existingSecret $a.jwksUrl)) }}
{{- fail "auth is on by default and needs a key: set auth.existingSecret (a Secret with AUTH_JWT_SECRET), auth.jwtSecret or auth.jwksUrl; or set auth.enabled=false to run without authentication" }}
{{- end }}
{{- with $a.pageToken }}
{{- /* Every visitor of the page can read this token from /config.json: read and subscribe only.
The claims are the JWT's second part, base64url without padding (RFC 7515 section 2). */}}
{{- $parts := splitList "." . }}
{{- $claims := dict }}
{{- if eq (len $parts) 3 }}
{{- $b64 := index $parts 1 | replace "-" "+" | replace "_" "/" }}
{{- $b64 = printf "%s%s" $b64 (repeat (int (mod (sub 4 (mod (len $b64) 4)) 4)) "=") }}
{{- $claims = b64dec $b64 | fromJson }}
{{- end }}
{{- if not (kindIs "string" $claims.scope) }}
{{- fail "auth.pageToken must be a JWT with a scope claim (messages:read messages:subscribe)" }}
{{- end }}
{{- $extra := without (splitList " " $claims.scope | compact) "messages:read" "messages:subscribe" }}
{{- if $extra }}
{{- fail (printf "auth.pageToken is handed to every visitor of the page, so it may hold only messages:read messages:subscribe (it also holds %s)" (join " " $extra)) }}
{{- end }}
{{- end }}
{{- end }}
{{- define "falcon.authEnv" -}}
{{- $a := .root.Values.auth }}
{{- if and $a.enabled (has .name (list "ingest" "query" "realtime")) }}
{{- if or $a.jwtSecret $a.existingSecret }}
- name: AUTH_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "falcon.authSecretName" .root }}
      key: {{ ternary $a.jwtSecretKey "AUTH_JWT_SECRET" (not (empty $a.existingSecret)) }}
{{- end }}
{{- with $a.jwksUrl }}
- name: AUTH_JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- with $a.issuer }}
- name: AUTH_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $a.audience }}
- name: AUTH_AUDIENCE
  value: {{ . | quote }}
{{- end }}
- name: AUTH_CLOCK_TOLERANCE_SECONDS
  value: {{ include "falcon.int" $a.clockToleranceSeconds }}
{{- $pageTokenKey := ternary $a.pageTokenKey (ternary "REALTIME_PAGE_TOKEN" "" (not (empty $a.pageToken))) (not (empty $a.existingSecret)) }}
{{- if and (eq .name "realtime") $pageTokenKey }}
- name: REALTIME_PAGE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "falcon.authSecretName" .root }}
      key: {{ $pageTokenKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* Which Secrets the chart itself owns, for the checksum/secret annotation: a change to any
of them restarts the pods (an operator's existing Secret is theirs to roll). */}}
{{- define "falcon.secretChecksum" -}}
{{- include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{- define "falcon.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/* Pod spec of a one-shot Falcon job (migration, retention): the image with one entry point,
DATABASE_URL from a Secret and the Postgres CA. dict "root" $ "component" "migrate"
"args" (list ...) "resources" {...} "secretName" "..." */}}
{{- define "falcon.jobPodSpec" -}}
{{- $root := .root }}
restartPolicy: Never
{{- if not .hook }}
{{- /* A hook runs before the release's ServiceAccount exists. */}}
serviceAccountName: {{ include "falcon.serviceAccountName" $root }}
{{- end }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.persister.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.persister.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .component }}
    image: {{ include "falcon.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command: ["node"]
    args: {{ toJson .args }}
    env:
      - name: LOG_LEVEL
        value: {{ $root.Values.logLevel | quote }}
      - name: FALCON_NAMESPACE
        value: {{ $root.Values.namespace | quote }}
      - name: DATABASE_URL
        valueFrom:
          secretKeyRef:
            name: {{ .secretName }}
            key: {{ $root.Values.postgres.secretKey }}
      {{- if gt (int $root.Values.retention.days) 0 }}
      - name: RETENTION_DAYS
        value: {{ include "falcon.int" $root.Values.retention.days }}
      {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- include "falcon.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- with include "falcon.postgresCaMount" $root }}
      {{- . | trim | nindent 6 }}
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 16Mi
  {{- with include "falcon.postgresCaVolume" $root }}
  {{- . | trim | nindent 2 }}
  {{- end }}
{{- end }}

{{/* NetworkPolicy egress rules: DNS always, NATS and Postgres when the pod uses them.
dict "root" $ "nats" bool "database" bool */}}
{{- define "falcon.egressRules" -}}
{{- $np := .root.Values.networkPolicy }}
# DNS
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if .nats }}
- ports:
    - port: {{ .root.Values.nats.port }}
      protocol: TCP
  {{- with $np.natsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if .database }}
- ports:
    - port: {{ .root.Values.postgres.port }}
      protocol: TCP
  {{- with $np.postgresTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The NetworkPolicy of a one-shot job (migration, retention): nothing in, DNS and Postgres
out, so a compromised job pod reaches neither NATS nor the services.
dict "root" $ "component" "migrate" "annotations" {...} */}}
{{- define "falcon.jobNetworkPolicy" -}}
{{- if .root.Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "falcon.fullname" .root }}-{{ .component }}
  labels:
    {{- include "falcon.componentLabels" (dict "root" .root "name" .component) | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  podSelector:
    matchLabels:
      {{- include "falcon.componentSelectorLabels" (dict "root" .root "name" .component) | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress:
    {{- include "falcon.egressRules" (dict "root" .root "nats" false "database" true) | trim | nindent 4 }}
{{- end }}
{{- end }}
