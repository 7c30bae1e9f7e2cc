{{- define "tapio.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "tapio.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tapio.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tapio.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "tapio.secretName" -}}{{ include "tapio.fullname" . }}-secrets{{- end -}}

{{/* the servers and settings every component reads, as TAPIO_* variables */}}
{{- define "tapio.env" -}}
- name: TAPIO_NATS_URLS
  value: {{ join "," .Values.nats.urls | quote }}
- name: TAPIO_NATS_REPLICAS
  value: {{ .Values.nats.replicas | quote }}
- name: TAPIO_KAFKA_BOOTSTRAP_SERVERS
  value: {{ join "," .Values.kafka.bootstrapServers | quote }}
- name: TAPIO_KAFKA_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: TAPIO_GRAPH_URI
  value: {{ .Values.graph.uri | quote }}
- name: TAPIO_GRAPH_NAME
  value: {{ .Values.graph.name | quote }}
- name: TAPIO_GRAPH_USERNAME
  value: {{ .Values.graph.username | quote }}
{{- if or .Values.graph.password .Values.graph.existingSecret }}
- name: TAPIO_GRAPH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.graph.existingSecret | default (include "tapio.secretName" .) }}
      key: graph-password
{{- end }}
- name: TAPIO_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "tapio.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tapio.patternsConfigMap" -}}
{{- .Values.patterns.existingConfigMap | default (printf "%s-patterns" (include "tapio.fullname" .)) -}}
{{- end -}}

{{/* "true" where the cluster knows securityContext.appArmorProfile (1.30 on); empty before */}}
{{- define "tapio.appArmorField" -}}
{{- if semverCompare ">=1.30-0" (.Values.kubeVersionOverride | default .Capabilities.KubeVersion.Version) }}true{{ end -}}
{{- end -}}

{{/* the pod's network: the node's where the servers listen on the node itself (hostNetwork) */}}
{{- define "tapio.podNetwork" -}}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- end -}}

{{/* `tapio agent`'s config file (core.settings.AgentSettings): which collectors run, and their settings */}}
{{- define "tapio.agentConfig" -}}
{{- $options := mustMergeOverwrite (dict "cri" (dict "socket" .Values.agent.containerdSocket)) (deepCopy .Values.agent.options) -}}
agent:
  only: {{ toJson .Values.agent.only }}
  disable: {{ toJson .Values.agent.disable }}
  options: {{ toJson $options }}
{{- end -}}
