{{/* Sandboxes (README, "Sandboxes on Kubernetes"): with sandbox.scope caller or task, the
gateway creates a pod per sandbox through the Kubernetes API (the `kubernetes` runtime,
fleet/sandboxes/kubernetes.py), under the Role in role.yaml, and the NetworkPolicy in
networkpolicy-sandbox.yaml admits only the gateway to them. */}}

{{/* The scope: the value; blank: `caller` when the gateway can tell callers apart (API keys
or OAuth), else `off` (one token is one trust domain), as the gateway's own default. */}}
{{- define "ocgw.sandboxScope" -}}
{{- $scope := toString .Values.sandbox.scope -}}
{{- if $scope -}}
{{- $scope -}}
{{- else if or (include "ocgw.apiKeysSecret" .) .Values.gateway.oauth.issuer -}}
caller
{{- else -}}
off
{{- end -}}
{{- end -}}

{{- define "ocgw.sandboxed" -}}
{{- if ne (include "ocgw.sandboxScope" .) "off" -}}true{{- end -}}
{{- end -}}

{{/* The labels of every sandbox pod of this release (kube_objects.selector). */}}
{{- define "ocgw.sandboxSelectorLabels" -}}
app.kubernetes.io/component: sandbox
opencode-mcp-gateway/release: {{ include "ocgw.fullname" . }}
{{- end -}}

{{/* The Service in front of the gateways' LLM proxy, which the sandbox pods use. */}}
{{- define "ocgw.llmServiceName" -}}
{{- printf "%s-llm" (include "ocgw.fullname" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}

{{/* The gateway container's settings of the kubernetes runtime. */}}
{{- define "ocgw.sandboxEnv" -}}
- {name: SANDBOX, value: {{ include "ocgw.sandboxScope" . | quote }}}
- {name: SANDBOX_RUNTIME, value: kubernetes}
{{- with .Values.sandbox.idleSeconds }}
- {name: SANDBOX_IDLE_SECONDS, value: {{ . | toString | quote }}}
{{- end }}
{{- with .Values.sandbox.max }}
- {name: SANDBOX_MAX, value: {{ . | toString | quote }}}
{{- end }}
- {name: SANDBOX_KUBE_NAMESPACE, value: {{ .Release.Namespace | quote }}}
- {name: SANDBOX_KUBE_PREFIX, value: {{ include "ocgw.fullname" . | quote }}}
- {name: SANDBOX_KUBE_IMAGE, value: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"}
- {name: SANDBOX_KUBE_IMAGE_PULL_POLICY, value: {{ .Values.image.pullPolicy | quote }}}
- {name: SANDBOX_KUBE_LLM_PROXY_URL, value: "http://{{ include "ocgw.llmServiceName" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ include "ocgw.llmProxyPort" . }}/v1"}
{{- with .Values.sandbox.runtimeClassName }}
- {name: SANDBOX_KUBE_RUNTIME_CLASS, value: {{ . | quote }}}
{{- end }}
- {name: SANDBOX_KUBE_RESOURCES, value: {{ .Values.sandbox.resources | toJson | quote }}}
- {name: SANDBOX_KUBE_STORAGE_SIZE, value: {{ .Values.sandbox.storage.size | quote }}}
{{- with .Values.sandbox.storage.storageClass }}
- {name: SANDBOX_KUBE_STORAGE_CLASS, value: {{ . | quote }}}
{{- end }}
{{- end -}}

{{/* The gateway container's own service-account token, for the Kubernetes API. Not
automounted: that would give it to the OpenCode container too, whose agent could then
create pods. Lines indented for `volumes`. */}}
{{- define "ocgw.kubeApiVolume" -}}
- name: kube-api
  projected:
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
{{- end -}}

{{- define "ocgw.validateSandbox" -}}
{{- $scope := toString .Values.sandbox.scope -}}
{{- if and $scope (not (has $scope (list "caller" "task" "off"))) -}}
{{- fail (printf "sandbox.scope must be caller, task or off (got %s)" $scope) -}}
{{- end -}}
{{- end -}}
