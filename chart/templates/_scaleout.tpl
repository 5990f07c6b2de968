{{/* Several replicas (replicaCount > 1): a StatefulSet whose pods are each one gateway and one
OpenCode worker, found by their stable DNS names behind a headless Service. One replica keeps
today's Deployment. See docs/design.md, "The chart: one tier". */}}

{{/* "true" when the release runs as a StatefulSet, else empty. */}}
{{- define "ocgw.scaleOut" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* The StatefulSet's name, and so its pods' `<name>-<i>`: at most 52 characters, because the
controller labels each pod with `<name>-<10-character hash>`, which must fit in 63. */}}
{{- define "ocgw.setName" -}}
{{- include "ocgw.fullname" . | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "ocgw.headlessName" -}}
{{- printf "%s-workers" (include "ocgw.setName" .) -}}
{{- end -}}

{{/* Pod i's DNS name: <set>-<i>.<headless>.<namespace>.svc.<cluster domain>. Argument: (list $ i). */}}
{{- define "ocgw.podHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%v.%s.%s.svc.%s" (include "ocgw.setName" $root) (index . 1) (include "ocgw.headlessName" $root) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end -}}

{{/* GATEWAY_PEERS: every replica by its pod name (which is its GATEWAY_ID), this one included. */}}
{{- define "ocgw.peers" -}}
{{- $peers := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $peers = append $peers (printf "%s-%d=http://%s:8080" (include "ocgw.setName" $) $i (include "ocgw.podHost" (list $ $i))) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* The env that makes the pods one pool: who this pod is, who its peers are, where the workers
listen, and the secrets they share (from the Secret, never in plain env). */}}
{{- define "ocgw.scaleOutEnv" -}}
{{- $secret := include "ocgw.secretName" . -}}
- name: GATEWAY_ID
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- {name: GATEWAY_PEERS, value: {{ include "ocgw.peers" . | quote }}}
- name: REQUEST_STATE_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: request-state-key}}
{{- /* With sandboxes every new task runs in a sandbox pod: the pods' own OpenCodes are no pool. */}}
{{- if not (include "ocgw.sandboxed" .) }}
- {name: OPENCODE_WORKER_URL_TEMPLATE, value: {{ printf "http://%s:4096" (include "ocgw.podHost" (list . "{i}")) | quote }}}
- {name: OPENCODE_WORKER_COUNT, value: {{ .Values.replicaCount | toString | quote }}}
{{- end }}
- {name: OPENCODE_LISTEN_HOST, value: {{ .Values.workers.listenHost | quote }}}
{{- /* Stopping: SIGTERM comes to the gateway at once (no preStop hook in its container); it turns
not ready, so every replica stops placing on this pod's worker, and keeps serving this long,
then stops itself (5 s for open streams). The OpenCode container sleeps as long in its preStop,
then stops OpenCode (up to 10 s). */}}
- {name: SHUTDOWN_DRAIN_SECONDS, value: {{ .Values.drainSeconds | toString | quote }}}
{{- end -}}

{{/* A secret value of this release's Secret: the one it already holds (so `helm upgrade` keeps
it), else a new one: random, or the third argument when given (a value in a format of its own).
Argument: (list $ key [new]). */}}
{{- define "ocgw.keptSecret" -}}
{{- $root := index . 0 -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "ocgw.fullname" $root) -}}
{{- $kept := "" -}}
{{- if $existing -}}{{- $kept = index ($existing.data | default dict) (index . 1) | default "" | b64dec -}}{{- end -}}
{{- $fresh := "" -}}
{{- if gt (len .) 2 -}}{{- $fresh = index . 2 -}}{{- else -}}{{- $fresh = randAlphaNum 40 -}}{{- end -}}
{{- $kept | default $fresh -}}
{{- end -}}

{{- define "ocgw.validateScaleOut" -}}
{{- $set := include "ocgw.setName" . -}}
{{- if include "ocgw.scaleOut" . -}}
{{- if .Values.persistence.existingClaim -}}
{{- fail (printf "persistence.existingClaim cannot serve %v replicas: each pod's OpenCode needs its own volume (to keep a one-replica release's volume as worker 0's, see persistence.worker0VolumeName in the README)" .Values.replicaCount) -}}
{{- end -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.drainSeconds) 15) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least drainSeconds (%v) + 15: after draining the gateway needs up to 15 s to stop itself and its OpenCode" .Values.terminationGracePeriodSeconds .Values.drainSeconds) -}}
{{- end -}}
{{- else if .Values.persistence.worker0VolumeName -}}
{{- fail (printf "persistence.worker0VolumeName only applies with replicaCount > 1 (to go back to one replica on worker 0's volume, set persistence.existingClaim=data-%s-0)" $set) -}}
{{- end -}}
{{- end -}}
