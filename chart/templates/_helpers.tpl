{{- define "ocgw.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ocgw.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ocgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ocgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ocgw.labels" -}}
{{ include "ocgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: mcp-gateway
app.kubernetes.io/part-of: opencode
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ocgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ocgw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ocgw.secretName" -}}
{{- default (include "ocgw.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The bearer token: the given one; else the one this release's Secret already holds (so
`helm upgrade` keeps it); else a new random one. Empty with existingSecret (it holds its own). */}}
{{- define "ocgw.bearerToken" -}}
{{- if .Values.gateway.mcpBearerToken -}}
{{- .Values.gateway.mcpBearerToken -}}
{{- else if not .Values.existingSecret -}}
{{- include "ocgw.keptSecret" (list . "mcp-bearer-token") -}}
{{- end -}}
{{- end -}}

{{/* The Route's host: the configured one, else the one the cluster generated on an earlier install. */}}
{{- define "ocgw.routeHost" -}}
{{- if .Values.route.host -}}
{{- .Values.route.host -}}
{{- else -}}
{{- $route := lookup "route.openshift.io/v1" "Route" .Release.Namespace (include "ocgw.fullname" .) -}}
{{- if $route -}}{{- $route.spec.host -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* ALLOWED_HOSTS: the configured names plus the Route/Ingress host and the Service's DNS names. */}}
{{- define "ocgw.allowedHosts" -}}
{{- $hosts := list -}}
{{- range (splitList "," .Values.gateway.allowedHosts) -}}
{{- if trim . -}}{{- $hosts = append $hosts (trim .) -}}{{- end -}}
{{- end -}}
{{- if $hosts -}}
{{- if .Values.route.enabled -}}
{{- $routeHost := include "ocgw.routeHost" . -}}
{{- if $routeHost -}}{{- $hosts = append $hosts $routeHost -}}{{- end -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.host -}}
{{- $hosts = append $hosts .Values.ingress.host -}}
{{- end -}}
{{- $svc := include "ocgw.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts = concat $hosts (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) "localhost" "127.0.0.1") -}}
{{- if include "ocgw.scaleOut" . -}}  {{- /* each replica by its own name, as its peers address it */}}
{{- range $i := until (int .Values.replicaCount) -}}{{- $hosts = append $hosts (include "ocgw.podHost" (list $ $i)) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}

{{/* PUBLIC_URL: the configured URL, else https:// and the Route or Ingress host. */}}
{{- define "ocgw.publicUrl" -}}
{{- if .Values.gateway.publicUrl -}}
{{- .Values.gateway.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.route.enabled (include "ocgw.routeHost" .) -}}
{{- printf "https://%s" (include "ocgw.routeHost" .) -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding MCP_API_KEYS_FILE's `name token` lines (key `api-keys`), if any. */}}
{{- define "ocgw.apiKeysSecret" -}}
{{- if .Values.gateway.apiKeysSecret -}}
{{- .Values.gateway.apiKeysSecret -}}
{{- else if .Values.gateway.apiKeys -}}
{{- printf "%s-api-keys" (include "ocgw.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "ocgw.validate" -}}
{{- $_ := required "image.repository is required: --set image.repository=<registry>/opencode-mcp-gateway" .Values.image.repository -}}
{{- $_ := required "opencode.apiUrl is required: --set opencode.apiUrl=https://<provider>/v1" .Values.opencode.apiUrl -}}
{{- $_ := required "opencode.modelName is required: --set opencode.modelName=<model>" .Values.opencode.modelName -}}
{{- if and (not .Values.existingSecret) (not .Values.opencode.apiKey) -}}
{{- fail "opencode.apiKey is required (or name a Secret with the key opencode-api-key in existingSecret)" -}}
{{- end -}}
{{- if and .Values.route.enabled .Values.ingress.enabled -}}
{{- fail "enable either route (OpenShift) or ingress (plain Kubernetes), not both" -}}
{{- end -}}
{{- if and .Values.gateway.oauth.issuer (not (include "ocgw.publicUrl" .)) -}}
{{- fail "gateway.publicUrl is required with gateway.oauth.issuer (the https URL clients use; or set route.host / ingress.host)" -}}
{{- end -}}
{{- include "ocgw.validateScaleOut" . -}}
{{- include "ocgw.validateSplitPod" . -}}
{{- include "ocgw.validateSandbox" . -}}
{{- end -}}
