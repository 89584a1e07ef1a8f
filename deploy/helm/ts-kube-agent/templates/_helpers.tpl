{{/*
Names, labels and the sidecar container of ts-kube-agent.

Public, for other charts (see README.md, "Add the sidecar to your workload"):
  ts-kube-agent.sidecar         the agent container, a list item for initContainers/containers
  ts-kube-agent.initContainers  the agent container when it runs as a native sidecar, else nothing
  ts-kube-agent.containers      the agent container when it runs as a regular container, else nothing
  ts-kube-agent.sidecarVolumes  the socket emptyDir (unless "socketVolume" false) and config volume
  ts-kube-agent.nativeSidecar   "true" when the agent runs as a native sidecar, else ""
They take a dict:
  root        the caller's top-level context ($): Release, Capabilities
  values      the agent's values (this chart's values.yaml shape; for a dependency,
              (index .Values "ts-kube-agent"))
  appVersion  optional: the default image tag (default: this chart's appVersion)
  chartName   optional: the chart name used in default resource names (default
              "ts-kube-agent"; set it to the alias if the dependency is aliased)
*/}}

{{/* The agent version this chart was released with; equal to Chart.yaml's appVersion. */}}
{{- define "ts-kube-agent.defaultAppVersion" -}}
0.1.0
{{- end }}

{{- define "ts-kube-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource name: fullnameOverride, else "<release>-<name>", or the release name when it
already contains the name. 63 characters at most (DNS label).
*/}}
{{- define "ts-kube-agent.fullname" -}}
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

{{- define "ts-kube-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ts-kube-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ts-kube-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ts-kube-agent.labels" -}}
helm.sh/chart: {{ include "ts-kube-agent.chart" . }}
{{ include "ts-kube-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ts-kube-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ts-kube-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret target's name, or "" when the Secret target is off. */}}
{{- define "ts-kube-agent.secretName" -}}
{{- if .Values.targets.secret.enabled }}
{{- .Values.targets.secret.name | default (include "ts-kube-agent.fullname" .) }}
{{- end }}
{{- end }}

{{/* The ConfigMap target's name, or "" when the ConfigMap target is off. */}}
{{- define "ts-kube-agent.configMapName" -}}
{{- if .Values.targets.configMap.enabled }}
{{- .Values.targets.configMap.name | default (include "ts-kube-agent.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" when some target is not pre-created and the Role lets the agent create it. */}}
{{- define "ts-kube-agent.agentMayCreate" -}}
{{- $t := .Values.targets }}
{{- $missing := or (and $t.secret.enabled (not $t.secret.create)) (and $t.configMap.enabled (not $t.configMap.create)) }}
{{- and $missing .Values.rbac.allowCreate | toString }}
{{- end }}

{{/* The agent's YAML config file (config values plus the targets' key sets), or "". */}}
{{- define "ts-kube-agent.configFile" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- with .Values.targets.secret.keys }}
{{- $_ := set $cfg "secret-keys" . }}
{{- end }}
{{- with .Values.targets.configMap.keys }}
{{- $_ := set $cfg "configmap-keys" . }}
{{- end }}
{{- if $cfg }}
{{- toYaml $cfg }}
{{- end }}
{{- end }}

{{- define "ts-kube-agent.configMountDir" -}}
/etc/ts-kube-agent
{{- end }}

{{/* image reference from dict "image" <repository/tag/digest> "defaultTag" <tag> */}}
{{- define "ts-kube-agent.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .defaultTag | toString) }}
{{- end }}
{{- end }}

{{/* The scope the name helpers need, built from a sidecar dict: Values, Release, Chart.Name. */}}
{{- define "ts-kube-agent.sidecarScope" -}}
{{- $scope := dict "Values" .values "Release" .root.Release "Chart" (dict "Name" (.chartName | default "ts-kube-agent")) }}
{{- toJson $scope }}
{{- end }}

{{- define "ts-kube-agent.nativeSidecar" -}}
{{- $mode := .values.sidecar.mode | default "auto" }}
{{- if eq $mode "native" }}
{{- "true" }}
{{- else if eq $mode "auto" }}
{{- if semverCompare ">=1.29-0" .root.Capabilities.KubeVersion.Version }}
{{- "true" }}
{{- end }}
{{- else if ne $mode "regular" }}
{{- fail (printf "sidecar.mode must be auto, native or regular, not %q" $mode) }}
{{- end }}
{{- end }}

{{/*
The agent container as one list item. Restricted security context, probes on the admin port,
the LocalAPI socket mounted read-only (connecting to a unix socket needs no write access to
the mount).
*/}}
{{- define "ts-kube-agent.sidecar" -}}
{{- include "ts-kube-agent.sidecarContainer" . | trim }}
{{- end }}

{{- define "ts-kube-agent.sidecarContainer" -}}
{{- $v := required "ts-kube-agent.sidecar needs (dict \"root\" $ \"values\" <agent values>)" .values }}
{{- $root := required "ts-kube-agent.sidecar needs (dict \"root\" $ \"values\" <agent values>)" .root }}
{{- $scope := include "ts-kube-agent.sidecarScope" . | fromJson }}
{{- $_ := set $scope "Release" $root.Release }}
{{- $appVersion := .appVersion | default (include "ts-kube-agent.defaultAppVersion" .) }}
{{- $port := $v.metrics.port | int }}
- name: {{ $v.sidecar.containerName | default "ts-kube-agent" }}
  image: {{ include "ts-kube-agent.imageRef" (dict "image" $v.image "defaultTag" $appVersion) | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy | default "IfNotPresent" }}
  {{- if include "ts-kube-agent.nativeSidecar" . }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: TS_SOCKET
      value: {{ printf "%s/%s" $v.socket.dir $v.socket.file | quote }}
    - name: TS_KUBE_SECRET
      value: {{ include "ts-kube-agent.secretName" $scope | quote }}
    - name: TS_KUBE_CONFIGMAP
      value: {{ include "ts-kube-agent.configMapName" $scope | quote }}
    - name: TS_KUBE_CREATE_OBJECTS
      value: {{ include "ts-kube-agent.agentMayCreate" $scope | quote }}
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: TS_LOCAL_ADDR_PORT
      value: {{ printf "%s:%d" ($v.metrics.bindAddress | default "[::]") $port | quote }}
    - name: TS_TRACK_PEERS
      value: {{ $v.trackPeers | default false | toString | quote }}
    - name: TS_LOG_FORMAT
      value: {{ $v.logFormat | default "text" | quote }}
    - name: TS_LOG_LEVEL
      value: {{ $v.logLevel | default "info" | quote }}
    - name: TS_SHUTDOWN_TIMEOUT
      value: {{ $v.shutdownTimeout | default "10s" | quote }}
    {{- if include "ts-kube-agent.configFile" $scope }}
    - name: TS_AGENT_CONFIG
      value: {{ printf "%s/config.yaml" (include "ts-kube-agent.configMountDir" .) | quote }}
    {{- end }}
    {{- with include "ts-kube-agent.envList" $v.extraEnv }}
    {{- . | nindent 4 }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $port }}
      protocol: TCP
  {{- with $v.probes.liveness }}
  {{- if .enabled }}
  livenessProbe:
    httpGet:
      path: /livez
      port: {{ $port }}
    initialDelaySeconds: {{ .initialDelaySeconds | default 0 }}
    periodSeconds: {{ .periodSeconds | default 10 }}
    timeoutSeconds: {{ .timeoutSeconds | default 2 }}
    failureThreshold: {{ .failureThreshold | default 3 }}
  {{- end }}
  {{- end }}
  {{- with $v.probes.readiness }}
  {{- if .enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $port }}
    initialDelaySeconds: {{ .initialDelaySeconds | default 0 }}
    periodSeconds: {{ .periodSeconds | default 5 }}
    timeoutSeconds: {{ .timeoutSeconds | default 2 }}
    failureThreshold: {{ .failureThreshold | default 3 }}
  {{- end }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: {{ $v.socket.volumeName }}
      mountPath: {{ $v.socket.dir }}
      readOnly: true
    {{- if include "ts-kube-agent.configFile" $scope }}
    - name: ts-kube-agent-config
      mountPath: {{ include "ts-kube-agent.configMountDir" . }}
      readOnly: true
    {{- end }}
{{- end }}

{{/*
A list of EnvVar with every "value" rendered as a string: `--set extraEnv[0].value=1` gives an
int, which the API server would reject in an env value.
*/}}
{{- define "ts-kube-agent.envList" -}}
{{- include "ts-kube-agent.envListItems" . | trim }}
{{- end }}

{{- define "ts-kube-agent.envListItems" -}}
{{- range . }}
- name: {{ required "extraEnv: every entry needs a name" .name | quote }}
  {{- if hasKey . "value" }}
  value: {{ .value | toString | quote }}
  {{- end }}
  {{- with .valueFrom }}
  valueFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "ts-kube-agent.initContainers" -}}
{{- if include "ts-kube-agent.nativeSidecar" . }}
{{- include "ts-kube-agent.sidecar" . }}
{{- end }}
{{- end }}

{{- define "ts-kube-agent.containers" -}}
{{- if not (include "ts-kube-agent.nativeSidecar" .) }}
{{- include "ts-kube-agent.sidecar" . }}
{{- end }}
{{- end }}

{{/* Volumes the sidecar mounts: the socket emptyDir (skip with "socketVolume" false when the
pod already has it) and the config file's ConfigMap. */}}
{{- define "ts-kube-agent.sidecarVolumes" -}}
{{- include "ts-kube-agent.sidecarVolumeList" . | trim }}
{{- end }}

{{- define "ts-kube-agent.sidecarVolumeList" -}}
{{- $scope := include "ts-kube-agent.sidecarScope" . | fromJson }}
{{- $_ := set $scope "Release" .root.Release }}
{{- if ne (toString .socketVolume) "false" }}
- name: {{ .values.socket.volumeName }}
  emptyDir: {}
{{- end }}
{{- if include "ts-kube-agent.configFile" $scope }}
- name: ts-kube-agent-config
  configMap:
    name: {{ printf "%s-config" (include "ts-kube-agent.fullname" $scope | trunc 56 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/* tailscaled's state Secret in the example Deployment. */}}
{{- define "ts-kube-agent.tailscaledStateSecret" -}}
{{- .Values.deployment.tailscaled.stateSecret | default (include "ts-kube-agent.secretName" .) | default (printf "%s-state" (include "ts-kube-agent.fullname" . | trunc 57 | trimSuffix "-")) }}
{{- end }}

{{/* Fails with a clear message on values that cannot work. */}}
{{- define "ts-kube-agent.validate" -}}
{{- if not (or .Values.targets.secret.enabled .Values.targets.configMap.enabled) }}
{{- fail "targets: enable targets.secret or targets.configMap (or both); the agent needs somewhere to publish" }}
{{- end }}
{{- range $kind, $name := dict "targets.secret.name" (include "ts-kube-agent.secretName" .) "targets.configMap.name" (include "ts-kube-agent.configMapName" .) }}
{{- if and $name (not (regexMatch "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$" $name)) }}
{{- fail (printf "%s %q is not a valid object name (lowercase letters, digits, '-' and '.')" $kind $name) }}
{{- end }}
{{- end }}
{{- if not (has .Values.logFormat (list "text" "json")) }}
{{- fail (printf "logFormat must be text or json, not %q" (toString .Values.logFormat)) }}
{{- end }}
{{- if not (has .Values.logLevel (list "debug" "info" "warn" "error")) }}
{{- fail (printf "logLevel must be debug, info, warn or error, not %q" (toString .Values.logLevel)) }}
{{- end }}
{{- $port := .Values.metrics.port | int }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "metrics.port must be 1..65535, not %v" .Values.metrics.port) }}
{{- end }}
{{- $_ := include "ts-kube-agent.nativeSidecar" (dict "root" . "values" .Values) }}
{{- end }}
