{{/* The chart name, or nameOverride. */}}
{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of every object: the release name when it already
contains the chart name (a release "ferry" gives "ferry"), else
release-chart; truncated to 63 characters, the DNS label limit.
*/}}
{{- define "ferry.fullname" -}}
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

{{- define "ferry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ include "ferry.chart" . }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: connector
{{- end }}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The rendered ferry.yaml: the config values as YAML. */}}
{{- define "ferry.configYAML" -}}
{{- toYaml .Values.config }}
{{- end }}

{{/* A config value by dotted path, or "" when any step is missing. */}}
{{- define "ferry.configValue" -}}
{{- $v := .root.Values.config }}
{{- range splitList "." .path }}
{{- if kindIs "map" $v }}
{{- $v = get $v . }}
{{- else }}
{{- $v = "" }}
{{- end }}
{{- end }}
{{- if kindIs "invalid" $v }}{{ "" }}{{ else if kindIs "slice" $v }}{{ join "," $v }}{{ else }}{{ $v }}{{ end }}
{{- end }}

{{/*
The seconds in a Go duration string such as 20s, 1m30s or 500ms, as a
float; "" when the value is not one (ferry then rejects it itself).
*/}}
{{- define "ferry.durationSeconds" -}}
{{- $s := toString . | trim }}
{{- if regexMatch "^([0-9]*[.]?[0-9]+(ns|us|µs|ms|s|m|h))+$" $s }}
{{- $total := 0.0 }}
{{- $factors := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- range regexFindAll "[0-9]*[.]?[0-9]+(ns|us|µs|ms|s|m|h)" $s -1 }}
{{- $num := regexFind "^[0-9]*[.]?[0-9]+" . }}
{{- $unit := trimPrefix $num . }}
{{- $total = addf $total (mulf (float64 $num) (get $factors $unit)) }}
{{- end }}
{{- $total }}
{{- end }}
{{- end }}

{{/* Fails the render on values that cannot work together. */}}
{{- define "ferry.validate" -}}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled }}
{{- fail "keda.enabled and autoscaling.enabled are exclusive: KEDA creates its own HorizontalPodAutoscaler, and two would fight over the replicas" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" }}
{{- end }}
{{- $drain := include "ferry.configValue" (dict "root" . "path" "delivery.drain_timeout") | default "20s" }}
{{- $drainSeconds := include "ferry.durationSeconds" $drain }}
{{- if and $drainSeconds (le (float64 .Values.terminationGracePeriodSeconds) (float64 $drainSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than config.delivery.drain_timeout (%s): the kubelet would kill ferry before its deliveries drain and its offsets are committed" .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- end }}
