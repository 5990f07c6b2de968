{{/* The pod: the gateway, and its own `opencode serve` in a second container that holds none of
the gateway's secrets (_opencode.tpl). Shared by the Deployment (one replica) and the
StatefulSet (several: each pod is also one worker of the pool). Its lines are indented for
`spec.template`. */}}
{{- define "ocgw.podTemplate" }}
{{- $secret := include "ocgw.secretName" . }}
{{- $scaleOut := include "ocgw.scaleOut" . }}
    metadata:
      labels:
        {{- include "ocgw.labels" . | nindent 8 }}
      annotations:
        checksum/secret: {{ include "ocgw.secretValues" . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "ocgw.serviceAccountName" . }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      containers:
        - name: gateway
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          # OpenCode runs in the `opencode` container: this one reaches it at 127.0.0.1:4096 and
          # serves it the model on LLM_PROXY_PORT, adding OPENCODE_API_KEY there.
          args: ["--no-spawn-opencode"]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            - {name: PORT, value: "8080"}
            - {name: HOST, value: "0.0.0.0"}
            - {name: OPENCODE_API_URL, value: {{ .Values.opencode.apiUrl | quote }}}
            - {name: OPENCODE_MODEL_NAME, value: {{ .Values.opencode.modelName | quote }}}
            - name: OPENCODE_API_KEY
              valueFrom: {secretKeyRef: {name: {{ $secret }}, key: opencode-api-key}}
            - name: MCP_BEARER_TOKEN
              valueFrom: {secretKeyRef: {name: {{ $secret }}, key: mcp-bearer-token, optional: {{ and (not .Values.gateway.mcpBearerToken) (not (empty .Values.existingSecret)) }}}}
            {{- if .Values.gateway.allowUnauthenticated }}
            - {name: ALLOW_UNAUTHENTICATED, value: "true"}
            {{- end }}
            {{- include "ocgw.podLinkEnv" . | nindent 12 }}
            {{- if $scaleOut }}
            {{- include "ocgw.scaleOutEnv" . | nindent 12 }}
            {{- end }}
            {{- with .Values.workers.maxTasks }}
            - {name: WORKER_MAX_TASKS, value: {{ . | toString | quote }}}
            {{- end }}
            {{- if ne (toString .Values.workers.scheduleWaitSeconds) "" }}
            - {name: SCHEDULE_WAIT_SECONDS, value: {{ .Values.workers.scheduleWaitSeconds | toString | quote }}}
            {{- end }}
            - {name: DEFAULT_AGENT, value: {{ .Values.gateway.defaultAgent | quote }}}
            {{- with .Values.gateway.defaultModel }}
            - {name: DEFAULT_MODEL, value: {{ . | quote }}}
            {{- end }}
            - {name: SESSION_TITLE_PREFIX, value: {{ .Values.gateway.sessionTitlePrefix | quote }}}
            {{- with include "ocgw.allowedHosts" . }}
            - {name: ALLOWED_HOSTS, value: {{ . | quote }}}
            {{- end }}
            - {name: PERMISSION_POLICY, value: {{ .Values.gateway.permissionPolicy | quote }}}
            - {name: TASK_TIMEOUT_SECONDS, value: {{ .Values.gateway.taskTimeoutSeconds | quote }}}
            - {name: INPUT_TIMEOUT_SECONDS, value: {{ .Values.gateway.inputTimeoutSeconds | quote }}}
            - {name: LOG_LEVEL, value: {{ .Values.gateway.logLevel | quote }}}
            {{- with include "ocgw.publicUrl" . }}
            - {name: PUBLIC_URL, value: {{ . | quote }}}
            {{- end }}
            {{- if include "ocgw.apiKeysSecret" . }}
            - {name: MCP_API_KEYS_FILE, value: /etc/opencode-mcp-gateway/api-keys/api-keys}
            {{- end }}
            {{- with .Values.gateway.oauth }}
            {{- if .issuer }}
            - {name: OAUTH_ISSUER, value: {{ .issuer | quote }}}
            {{- with .jwksUrl }}
            - {name: OAUTH_JWKS_URL, value: {{ . | quote }}}
            {{- end }}
            {{- with .audience }}
            - {name: OAUTH_AUDIENCE, value: {{ . | quote }}}
            {{- end }}
            {{- with .requiredScopes }}
            - {name: OAUTH_REQUIRED_SCOPES, value: {{ . | quote }}}
            {{- end }}
            {{- with .adminScope }}
            - {name: OAUTH_ADMIN_SCOPE, value: {{ . | quote }}}
            {{- end }}
            {{- end }}
            {{- end }}
            - {name: WORKSPACE_DIR, value: /workspace}
            - {name: OPENCODE_STATE_DIR, value: /var/lib/opencode-gateway}
            - {name: HOME, value: /var/lib/opencode-gateway/home}
            {{- with .Values.repositories.allowlist }}
            - {name: REPOSITORY_ALLOWLIST, value: {{ . | quote }}}
            {{- end }}
            {{- if .Values.repositories.credentialsSecret }}
            - {name: GIT_CREDENTIALS_FILE, value: /etc/opencode-gateway/git/credentials}
            {{- end }}
            {{- with .Values.repositories.commitAuthor }}
            - {name: GIT_COMMIT_AUTHOR, value: {{ . | quote }}}
            {{- end }}
            - {name: WORKSPACE_TTL_HOURS, value: {{ .Values.repositories.ttlHours | quote }}}
            {{- if include "ocgw.sandboxed" . }}
            {{- include "ocgw.sandboxEnv" . | nindent 12 }}
            {{- end }}
            - name: WEBHOOK_SECRET
              valueFrom: {secretKeyRef: {name: {{ $secret }}, key: webhook-secret, optional: {{ not (empty .Values.existingSecret) }}}}
            {{- with .Values.webhooks.urlAllowlist }}
            - {name: WEBHOOK_URL_ALLOWLIST, value: {{ . | quote }}}
            {{- end }}
            {{- with .Values.webhooks.url }}
            - {name: WEBHOOK_URL, value: {{ . | quote }}}
            {{- end }}
            - {name: WEBHOOK_RETRY_SECONDS, value: {{ .Values.webhooks.retrySeconds | toString | quote }}}
            {{- range .Values.gateway.extraEnv }}
            - name: {{ .name | quote }}
              {{- if .valueFrom }}
              valueFrom:
                {{- toYaml .valueFrom | nindent 16 }}
              {{- else }}
              value: {{ .value | toString | quote }}  {{/* --set makes 5 a number; env wants a string */}}
              {{- end }}
            {{- end }}
          startupProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: {{ .Values.probes.startup.periodSeconds }}
            failureThreshold: {{ .Values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - {name: data, mountPath: /workspace, subPath: workspace}
            - {name: data, mountPath: /var/lib/opencode-gateway, subPath: opencode}
            - {name: tmp, mountPath: /tmp}
            {{- if include "ocgw.apiKeysSecret" . }}
            # a whole-directory mount (no subPath), so rotated keys arrive without a restart
            - {name: api-keys, mountPath: /etc/opencode-mcp-gateway/api-keys, readOnly: true}
            {{- end }}
            {{- if .Values.repositories.credentialsSecret }}
            - {name: git-credentials, mountPath: /etc/opencode-gateway/git, readOnly: true}
            {{- end }}
            {{- if include "ocgw.sandboxed" . }}
            # where the Kubernetes client finds its in-cluster credentials; this container's only
            - {name: kube-api, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
            {{- end }}
        {{- include "ocgw.opencodeContainer" . }}
      volumes:
        {{- /* With several replicas, `data` is each pod's claim from the volumeClaimTemplates. */}}
        {{- if not (and $scaleOut .Values.persistence.enabled) }}
        - name: data
          {{- if .Values.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ default (include "ocgw.fullname" .) .Values.persistence.existingClaim }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        - name: tmp
          emptyDir: {}
        - name: opencode-tmp      # OpenCode's own: the gateway's /tmp is not the agent's to read
          emptyDir: {}
        {{- if include "ocgw.sandboxed" . }}
        {{- include "ocgw.kubeApiVolume" . | nindent 8 }}
        {{- end }}
        {{- with include "ocgw.apiKeysSecret" . }}
        - name: api-keys
          secret: {secretName: {{ . }}, items: [{key: api-keys, path: api-keys}]}
        {{- end }}
        {{- with .Values.repositories.credentialsSecret }}
        - name: git-credentials
          secret:
            secretName: {{ . | quote }}
            defaultMode: 0444
            items:
              - {key: {{ $.Values.repositories.credentialsKey | quote }}, path: credentials}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml .Values.topologySpreadConstraints | nindent 8 }}
      {{- else if $scaleOut }}
      topologySpreadConstraints:  # replicas on different nodes where possible: losing one node loses one worker
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "ocgw.selectorLabels" . | nindent 14 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
