{{/* The pod's second container: OpenCode alone (`opencode-mcp-gateway opencode`), the same image.
Its agent runs shell commands as this container's user, so it is given none of the gateway's
secrets: no provider key, no git credentials, no callers' tokens or API keys, and no mount of
them. It shares the pod's network (the gateway reaches it at 127.0.0.1:4096, it reaches the
gateway's LLM proxy at 127.0.0.1:<llmProxyPort>) and the data volume, mounted at the same paths
as in the gateway's container. Without shareProcessNamespace it cannot see the gateway's
processes either. See docs/design.md, "The agent's boundary". Lines indented for `containers`. */}}

{{/* The loopback port of the gateway's LLM proxy, the same in both containers. */}}
{{- define "ocgw.llmProxyPort" -}}4097{{- end -}}

{{/* What both containers are given to find each other: the proxy's port and token, OpenCode's password. */}}
{{- define "ocgw.podLinkEnv" -}}
{{- $secret := include "ocgw.secretName" . -}}
- {name: LLM_PROXY_PORT, value: {{ include "ocgw.llmProxyPort" . | quote }}}
- name: LLM_PROXY_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: llm-proxy-token}}
- name: OPENCODE_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: opencode-server-password}}
{{- end -}}

{{- define "ocgw.opencodeContainer" }}
{{- $scaleOut := include "ocgw.scaleOut" . }}
        - name: opencode
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["opencode"]
          {{- if $scaleOut }}
          ports:
            - name: opencode      # this pod's worker, for the other replicas
              containerPort: 4096
              protocol: TCP
          {{- end }}
          env:
            {{- include "ocgw.podLinkEnv" . | nindent 12 }}
            - {name: OPENCODE_MODEL_NAME, value: {{ .Values.opencode.modelName | quote }}}
            - {name: OPENCODE_LISTEN_HOST, value: {{ ternary .Values.workers.listenHost "127.0.0.1" (not (empty $scaleOut)) | quote }}}
            - {name: PERMISSION_POLICY, value: {{ .Values.gateway.permissionPolicy | quote }}}
            - {name: LOG_LEVEL, value: {{ .Values.gateway.logLevel | quote }}}
            - {name: WORKSPACE_DIR, value: /workspace}
            - {name: OPENCODE_STATE_DIR, value: /var/lib/opencode-gateway}
            - {name: HOME, value: /var/lib/opencode-gateway/home}
            {{- range .Values.gateway.extraEnv }}
            {{- if hasPrefix "MODEL_COST_" (toString .name) }}  {{/* prices go into OpenCode's config */}}
            - {name: {{ .name | quote }}, value: {{ .value | toString | quote }}}
            {{- end }}
            {{- end }}
          {{- if $scaleOut }}
          lifecycle:
            # OpenCode keeps serving while its gateway drains (SHUTDOWN_DRAIN_SECONDS: its running
            # tasks, their reads and follow-ups): a preStop here hides nothing from the gateway,
            # which gets its SIGTERM at once and leaves placement.
            preStop:
              exec: {command: [sleep, {{ .Values.drainSeconds | toString | quote }}]}
          {{- end }}
          # A hung OpenCode is restarted. The probe asks /global/health with the password this
          # container already has (OPENCODE_PASSWORD): nothing secret is in the pod spec.
          startupProbe:
            {{- include "ocgw.opencodeProbe" . | nindent 12 }}
            periodSeconds: {{ .Values.probes.startup.periodSeconds }}
            failureThreshold: {{ .Values.probes.startup.failureThreshold }}
          livenessProbe:
            {{- include "ocgw.opencodeProbe" . | nindent 12 }}
            periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
          resources:
            {{- toYaml .Values.opencodeResources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - {name: data, mountPath: /workspace, subPath: workspace}
            - {name: data, mountPath: /var/lib/opencode-gateway, subPath: opencode}
            - {name: opencode-tmp, mountPath: /tmp}
{{- end }}

{{/* An existingSecret made for an earlier chart lacks the two keys that link the containers:
stop with a message that says what to add, rather than a pod stuck in CreateContainerConfigError.
Only where the cluster answers (`helm install/upgrade`; `helm template` cannot look). */}}
{{- define "ocgw.validateSplitPod" -}}
{{- with .Values.existingSecret -}}
{{- $existing := lookup "v1" "Secret" $.Release.Namespace . -}}
{{- if $existing -}}
{{- $missing := list -}}
{{- range $key := list "opencode-server-password" "llm-proxy-token" -}}
{{- if not (hasKey ($existing.data | default dict) $key) -}}{{- $missing = append $missing $key -}}{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "existingSecret %s has no %s: add them (any random strings, e.g. openssl rand -hex 24); they link the pod's gateway and OpenCode containers" . (join " and " $missing)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* GET /global/health with the container's own password: the same script as every sandbox
pod's (fleet/sandboxes/kube_objects.py PROBE_SCRIPT; a chart test keeps the two equal). */}}
{{- define "ocgw.opencodeProbe" -}}
exec:
  command:
    - python3
    - -c
    - |
      import base64, os, urllib.request
      password = os.environ.get("OPENCODE_SERVER_PASSWORD") or os.environ["OPENCODE_PASSWORD"]
      user = os.environ.get("OPENCODE_SERVER_USERNAME") or "opencode"
      port = os.environ.get("OPENCODE_PROBE_PORT") or "4096"
      auth = base64.b64encode(f"{user}:{password}".encode()).decode()
      request = urllib.request.Request(f"http://127.0.0.1:{port}/global/health", headers={"Authorization": "Basic " + auth})
      urllib.request.urlopen(request, timeout=4)
{{- end -}}
