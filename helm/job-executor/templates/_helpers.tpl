{{/* Chart name, at most 63 characters. */}}
{{- define "job-executor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name alone when it already contains the chart name. */}}
{{- define "job-executor.fullname" -}}
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

{{- define "job-executor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "job-executor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "job-executor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "job-executor.labels" -}}
helm.sh/chart: {{ include "job-executor.chart" . }}
{{ include "job-executor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image reference: repository:tag (tag defaults to appVersion), or repository@digest. */}}
{{- define "job-executor.pullPolicy" -}}
{{- if .Values.image.pullPolicy }}
{{- .Values.image.pullPolicy }}
{{- else if and (not .Values.image.digest) (regexMatch "^v?[0-9]+[.][0-9]+[.][0-9]+-" (.Values.image.tag | default .Chart.AppVersion | toString)) }}
{{- /* A pre-release tag can be pushed again: pull it again (the oda-canvas convention). */}}
{{- "Always" }}
{{- else }}
{{- "IfNotPresent" }}
{{- end }}
{{- end }}

{{- define "job-executor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "job-executor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "job-executor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The jobs' default ServiceAccount; empty when none is created or named. */}}
{{- define "job-executor.jobServiceAccountName" -}}
{{- if .Values.jobConfig.serviceAccount.create }}
{{- default (printf "%s-job" (include "job-executor.fullname" .)) .Values.jobConfig.serviceAccount.name }}
{{- else }}
{{- .Values.jobConfig.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "job-executor.jobNamespace" -}}
{{- default .Release.Namespace .Values.jobConfig.namespace }}
{{- end }}

{{/* Name of the Secret the chart creates for tokens given as values. */}}
{{- define "job-executor.secretName" -}}
{{- include "job-executor.fullname" . }}
{{- end }}

{{- define "job-executor.configsName" -}}
{{- printf "%s-configs" (include "job-executor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Does the chart create its Secret for the receiver token? */}}
{{- define "job-executor.createSecret" -}}
{{- if and .Values.receiver.authToken (not .Values.receiver.existingSecret) }}true{{- end }}
{{- end }}

{{/* Secret (key `token`) the chart creates for keptn.api.token, in the release and job namespaces. */}}
{{- define "job-executor.keptnSecretName" -}}
{{- printf "%s-keptn-api-token" (include "job-executor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Secret in the job namespace (key `token`) that job init containers read the Keptn API token
from (KEPTN_API_TOKEN_SECRET): named explicitly, else the chart-created one, else the existing
secret when it is in the job namespace and keeps the token under `token`. Empty: none usable.
*/}}
{{- define "job-executor.jobTokenSecret" -}}
{{- $api := .Values.keptn.api }}
{{- if $api.jobTokenSecret }}
{{- $api.jobTokenSecret }}
{{- else if $api.token }}
{{- include "job-executor.keptnSecretName" . }}
{{- else if and $api.existingSecret (eq (include "job-executor.jobNamespace" .) .Release.Namespace) (eq $api.existingSecretKey "token") }}
{{- $api.existingSecret }}
{{- end }}
{{- end }}

{{/* Are job configs read from a mounted directory? */}}
{{- define "job-executor.localConfigs" -}}
{{- if not .Values.keptn.enabled }}true{{- end }}
{{- end }}

{{/* A comma-separated string from a string or a list. */}}
{{- define "job-executor.csv" -}}
{{- if kindIs "slice" . }}{{ join "," . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* ConfigMap key of a config file path: readable, and unique thanks to a hash of the path. */}}
{{- define "job-executor.configKey" -}}
{{- printf "%s.%s" (regexReplaceAll "[^-._a-zA-Z0-9]" . "_" | trunc 200) (sha256sum . | trunc 10) }}
{{- end }}

{{/* Refuse values that would deploy something broken, with a message saying what to change. */}}
{{- define "job-executor.validate" -}}
{{- /* JES's value names: refused naming the keys that replace them (chart README, "Migrating"). */}}
{{- if .Values.remoteControlPlane }}
{{- fail "remoteControlPlane is JES's name: set keptn.enabled=true, keptn.api.endpoint (e.g. http://api-gateway-nginx.keptn/api), keptn.api.existingSecret (the token) and keptn.subscriptions (was topicSubscription)" }}
{{- end }}
{{- if .Values.jobexecutorserviceinitcontainer }}
{{- fail "jobexecutorserviceinitcontainer is JES's name: set initContainerImage (repository:tag) instead" }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.dispatcher.shutdownGraceSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than dispatcher.shutdownGraceSeconds (%v), or Kubernetes kills the service before it has saved its state" .Values.terminationGracePeriodSeconds .Values.dispatcher.shutdownGraceSeconds) }}
{{- end }}
{{- if and .Values.state.persistence.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "state.persistence.enabled needs replicaCount 1: replicas must not share one state file (use the default emptyDir with several replicas)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount above 1 needs leaderElection.enabled: without a leader, each replica's own state would let an event run twice" }}
{{- end }}
{{- if .Values.keptn.enabled }}
{{- if not .Values.keptn.api.endpoint }}
{{- fail "keptn.enabled needs keptn.api.endpoint (e.g. http://api-gateway-nginx.keptn/api)" }}
{{- end }}
{{- if not (or .Values.keptn.api.token .Values.keptn.api.existingSecret) }}
{{- fail "keptn.enabled needs keptn.api.existingSecret (preferred) or keptn.api.token" }}
{{- end }}
{{- if not (include "job-executor.jobTokenSecret" .) }}
{{- fail "keptn.api.jobTokenSecret: job pods read the Keptn API token from a Secret in the job namespace under the key `token`; name one (keptn.api.existingSecret can serve only when it is in the job namespace and its key is `token`)" }}
{{- end }}
{{- end }}
{{- if and .Values.nats.enabled (not .Values.nats.subjects) }}
{{- fail "nats.enabled needs at least one subject in nats.subjects" }}
{{- end }}
{{- if and .Values.keptn.enabled (or .Values.configs.files .Values.configs.existingConfigMap) }}
{{- fail "configs.files and configs.existingConfigMap are for the local config source; with keptn.enabled configs come from the Keptn resource service" }}
{{- end }}
{{- if and .Values.receiver.authToken .Values.receiver.existingSecret }}
{{- fail "set either receiver.existingSecret or receiver.authToken, not both" }}
{{- end }}
{{- if and .Values.keptn.api.token .Values.keptn.api.existingSecret }}
{{- fail "set either keptn.api.existingSecret or keptn.api.token, not both" }}
{{- end }}
{{- if and .Values.configs.files .Values.configs.existingConfigMap }}
{{- fail "set either configs.files or configs.existingConfigMap, not both" }}
{{- end }}
{{- range $path, $_ := .Values.configs.files }}
{{- if or (hasPrefix "/" $path) (regexMatch "(^|/)\\.\\.?(/|$)" $path) }}
{{- fail (printf "configs.files: %q must be a relative path inside the config tree" $path) }}
{{- end }}
{{- end }}
{{- end }}
