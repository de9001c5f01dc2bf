{{/* Names: <release>-<chart> unless overridden, cut to the 63 characters DNS allows. */}}
{{- define "llm-stack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-stack.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-stack.vllm" -}}{{ include "llm-stack.fullname" . }}-vllm{{- end }}
{{- define "llm-stack.usvc" -}}{{ include "llm-stack.fullname" . }}-usvc{{- end }}
{{- define "llm-stack.cache" -}}{{ include "llm-stack.fullname" . }}-model-cache{{- end }}

{{/* Labels on every object; selector labels are the stable subset (component says which). */}}
{{- define "llm-stack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "llm-stack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "llm-stack.selector" -}}
app.kubernetes.io/name: {{ include "llm-stack.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llm-stack.image" -}}
{{- $registry := .root.Values.imageRegistry | trimSuffix "/" }}
{{- if $registry }}{{ $registry }}/{{ end }}{{ .image.repository }}:{{ .image.tag }}
{{- end }}

{{/* Every pod: non-root uid 1000, RuntimeDefault seccomp, no service-account token. */}}
{{- define "llm-stack.podSecurity" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Every container: read-only root, no capabilities, no privilege escalation. */}}
{{- define "llm-stack.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* HF_TOKEN only ever as a reference to the operator's Secret. */}}
{{- define "llm-stack.hfTokenEnv" -}}
{{- if .Values.hfToken.existingSecret }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.hfToken.existingSecret }}
      key: {{ .Values.hfToken.key }}
{{- end }}
{{- end }}

{{/* Where the FP8 job publishes and vLLM reads: <HF_HOME>/inc/<model basename>/. */}}
{{- define "llm-stack.fp8Dir" -}}
/data/inc/{{ base (trimSuffix "/" .Values.model) }}
{{- end }}

{{- define "llm-stack.vllmEndpoint" -}}
http://{{ include "llm-stack.vllm" . }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.vllm.port }}
{{- end }}

{{/* Cross-field rules the schema cannot state; helm stops with the message. */}}
{{- define "llm-stack.checks" -}}
{{- if and .Values.fp8.enabled (ne .Values.device "hpu") }}
{{- fail "fp8.enabled=true needs device=hpu (FP8 serving runs on Intel Gaudi; use -f values-gaudi.yaml)" }}
{{- end }}
{{- if and .Values.fp8.enabled (not .Values.fp8.datasetPath) }}
{{- fail "fp8.enabled=true needs fp8.datasetPath (the calibration prompts, a path in the model cache under /data)" }}
{{- end }}
{{- if and .Values.fp8.enabled (not (or .Values.vllm.cache.persistence .Values.vllm.cache.existingClaim)) }}
{{- fail "fp8.enabled=true needs a shared model cache: set vllm.cache.persistence=true (ReadWriteMany) or vllm.cache.existingClaim" }}
{{- end }}
{{- with .Values.microservice.autoscaling }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail (printf "microservice.autoscaling.minReplicas (%v) is above maxReplicas (%v)" .minReplicas .maxReplicas) }}
{{- end }}
{{- end }}
{{- if and .Values.vllm.kvEventsPort (eq (int .Values.vllm.kvEventsPort) (int .Values.vllm.port)) }}
{{- fail "vllm.kvEventsPort is vllm.port too: the KV-cache events need a port of their own" }}
{{- end }}
{{- if and .Values.vllm.lora.adapters (not .Values.vllm.lora.existingClaim) }}
{{- fail "vllm.lora.adapters needs vllm.lora.existingClaim (the claim holding their folders, mounted at /adapters)" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled=true needs ingress.host" }}
{{- end }}
{{- end }}
