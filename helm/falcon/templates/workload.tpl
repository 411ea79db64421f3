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
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.port | quote }}
        prometheus.io/path: /metrics
        {{- with $root.Values.podAnnotations }}
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
          envFrom:
            - configMapRef:
                name: {{ include "falcon.fullname" $root }}-config
          env:
            - name: PORT
              value: {{ $v.port | quote }}
            {{- if include "falcon.usesDatabase" $name }}
            {{- include "falcon.databaseEnv" $root | nindent 12 }}
            {{- end }}
            {{- if and (eq $name "ingest") $v.payloadSchema }}
            - name: INGEST_SCHEMA_FILE
              value: /etc/falcon/payload-schema.json
            {{- end }}
            {{- range $key, $value := $v.env }}
            - name: {{ $key }}
              value: {{ $value | quote }}
            {{- end }}
          startupProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $root.Values.preStopSleepSeconds }}"]
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "falcon.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if and (eq $name "ingest") $v.payloadSchema }}
            - name: payload-schema
              mountPath: /etc/falcon
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if and (eq $name "ingest") $v.payloadSchema }}
        - name: payload-schema
          configMap:
            name: {{ include "falcon.fullname" $root }}-config
            items:
              - key: payload-schema.json
                path: payload-schema.json
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
    - ports:
        - port: http
          protocol: TCP
      {{- $from := ternary $root.Values.networkPolicy.metricsFrom $root.Values.networkPolicy.ingressFrom (eq $name "persister") }}
      {{- with $from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    # DNS
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- if include "falcon.usesNats" $name }}
    - ports:
        - port: {{ $root.Values.nats.port }}
          protocol: TCP
      {{- with $root.Values.networkPolicy.natsTo }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if include "falcon.usesDatabase" $name }}
    - ports:
        - port: {{ $root.Values.postgres.port }}
          protocol: TCP
      {{- with $root.Values.networkPolicy.postgresTo }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}
