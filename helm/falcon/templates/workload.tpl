{{/*
One component of Falcon: Deployment, Service, optional HPA, PodDisruptionBudget and
NetworkPolicy, from the values keyed by its name. Called as:
  include "falcon.workload" (dict "root" $ "name" "ingest")
*/}}
{{- define "falcon.workload" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $v := index $root.Values $name }}
{{- $fullname := printf "%s-%s" (include "falcon.fullname" $root) $name | trunc 63 | trimSuffix "-" }}
{{- $nats := include "falcon.natsAuth" . | fromYaml }}
{{- $usesNats := include "falcon.usesNats" $name }}
{{- $usesDb := include "falcon.usesDatabase" $name }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "falcon.componentLabels" . | nindent 4 }}
spec:
  {{- if not (include "falcon.autoscaled" .) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "falcon.componentSelectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "falcon.componentLabels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include "falcon.secretChecksum" $root }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ include "falcon.int" $root.Values.opsPort }}
        prometheus.io/path: /metrics
        {{- with (merge (deepCopy (default dict $v.podAnnotations)) $root.Values.podAnnotations) }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "falcon.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      # Replicas spread across nodes when they can be (ScheduleAnyway), so one node's loss does
      # not take a whole service down, without blocking scheduling on a one-node cluster.
      topologySpreadConstraints:
        {{- if $v.topologySpreadConstraints }}
        {{- toYaml $v.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "falcon.componentSelectorLabels" . | nindent 14 }}
        {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "falcon.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["node"{{ if $root.Values.image.watch }}, "--watch"{{ end }}]
          args: ["services/{{ $name }}/dist/main.js"]
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
            - name: ops
              containerPort: {{ $root.Values.opsPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "falcon.fullname" $root }}-config
          env:
            - name: PORT
              value: {{ $v.port | quote }}
            {{- if $usesDb }}
            {{- include "falcon.databaseEnv" $root | nindent 12 }}
            - name: PG_POOL_MAX
              value: {{ include "falcon.int" $v.poolMax }}
            {{- end }}
            {{- if $usesNats }}
            {{- with include "falcon.natsEnv" . }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- end }}
            {{- with include "falcon.authEnv" . }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- if and (eq $name "ingest") $v.payloadSchema }}
            - name: INGEST_SCHEMA_FILE
              value: /etc/falcon/schema/payload.schema.json
            {{- end }}
            {{- range $key, $value := $v.env }}
            - name: {{ $key }}
              value: {{ include "falcon.scalar" $value }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # Probes use the ops listener (OPS_PORT), like the NetworkPolicy's Prometheus rule.
          startupProbe:
            httpGet: { path: /healthz, port: ops }
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: { path: /healthz, port: ops }
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: ops }
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $root.Values.preStopSleepSeconds }}"]
          resources:
            {{- if eq $name "persister" }}
            {{- $limits := merge (dict "memory" (include "falcon.persisterMemoryLimit" $root)) (default dict $v.resources.limits) }}
            {{- toYaml (dict "requests" $v.resources.requests "limits" $limits) | nindent 12 }}
            {{- else }}
            {{- toYaml $v.resources | nindent 12 }}
            {{- end }}
          securityContext:
            {{- include "falcon.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if and (eq $name "ingest") $v.payloadSchema }}
            - name: payload-schema
              mountPath: /etc/falcon/schema
              readOnly: true
            {{- end }}
            {{- if $usesDb }}
            {{- with include "falcon.postgresCaMount" $root }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- end }}
            {{- if and $usesNats $nats.existingSecret }}
            - name: nats-auth
              mountPath: /etc/falcon/nats
              readOnly: true
            {{- end }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if and (eq $name "ingest") $v.payloadSchema }}
        - name: payload-schema
          configMap:
            name: {{ include "falcon.fullname" $root }}-schema
        {{- end }}
        {{- if $usesDb }}
        {{- with include "falcon.postgresCaVolume" $root }}
        {{- . | trim | nindent 8 }}
        {{- end }}
        {{- end }}
        {{- if and $usesNats $nats.existingSecret }}
        - name: nats-auth
          secret:
            secretName: {{ $nats.existingSecret }}
            defaultMode: 0440
        {{- end }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "falcon.componentLabels" . | nindent 4 }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "falcon.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.port }}
      targetPort: http
      protocol: TCP
    # Metrics and probes, for a ServiceMonitor; the HTTPRoute only ever targets `http`.
    - name: ops
      port: {{ $root.Values.opsPort }}
      targetPort: ops
      protocol: TCP
{{- if include "falcon.hpaEnabled" . }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "falcon.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "falcon.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "falcon.componentSelectorLabels" . | nindent 6 }}
{{- end }}
{{- if $root.Values.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "falcon.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "falcon.componentSelectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if ne $name "persister" }}
    # The public API (the persister has none).
    - ports:
        - port: http
          protocol: TCP
      {{- with $root.Values.networkPolicy.ingressFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    # Prometheus, on the ops port only (kubelet probes come from the node, which NetworkPolicy
    # always admits).
    - ports:
        - port: ops
          protocol: TCP
      {{- with $root.Values.networkPolicy.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    {{- include "falcon.egressRules" (dict "root" $root "nats" $usesNats "database" $usesDb) | trim | nindent 4 }}
{{- end }}
{{- end }}
