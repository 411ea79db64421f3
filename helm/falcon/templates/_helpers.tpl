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
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
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

{{- define "falcon.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}
