{{/* The base name of every object of the release. */}}
{{- define "mutu.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "mutu.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mutu
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "mutu.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mutu.operatorServiceAccountName" -}}
{{- default (printf "%s-operator" (include "mutu.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "mutu.portalServiceAccountName" -}}
{{- default (printf "%s-portal" (include "mutu.fullname" .)) .Values.portal.serviceAccount.name -}}
{{- end -}}

{{/* The container image: repository and tag (the chart's appVersion by default). */}}
{{- define "mutu.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The maintenance page's Service, as the operator points site Ingresses to it. */}}
{{- define "mutu.maintenanceService" -}}
{{- printf "%s-maintenance.%s.svc:%d" (include "mutu.fullname" .) .Release.Namespace (int .Values.maintenance.port) -}}
{{- end -}}

{{/* The HTTP-01 solver's Service name, in the release namespace. */}}
{{- define "mutu.acmeSolverService" -}}
{{- printf "%s-acme-solver" (include "mutu.fullname" .) -}}
{{- end -}}

{{/*
The security context of every container: what the `restricted` Pod Security
Standard asks for, and a read-only root file system.
*/}}
{{- define "mutu.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mutu.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
