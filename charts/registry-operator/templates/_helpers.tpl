{{/* Name of the chart (or nameOverride), shortened to fit label limits. */}}
{{- define "registry-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride if set; else the release name, plus the name unless the
release already contains it. */}}
{{- define "registry-operator.fullname" -}}
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

{{- define "registry-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "registry-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "registry-operator.labels" -}}
{{ include "registry-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "registry-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "registry-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether a Prometheus Operator kind is rendered: the API server serves
monitoring.coreos.com/v1/<kind> (helm install/upgrade ask it; `helm template` needs
--api-versions), or the value `force` says so. Call with (list . "Kind" .Values.x.force). */}}
{{- define "registry-operator.hasMonitoringKind" -}}
{{- $root := index . 0 }}
{{- if or (index . 2) ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" (index . 1))) }}true{{ end }}
{{- end }}
