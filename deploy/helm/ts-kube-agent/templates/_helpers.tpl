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

{{/* The layout (docs/OPERATIONS.md, "Layouts: who writes which key"): "own" or "shared". */}}
{{- define "ts-kube-agent.layout" -}}
{{- .Values.layout | default "own" }}
{{- end }}

{{/*
The Secret target's name, or "" when the Secret target is off. Layout own: targets.secret.name,
default "<fullname>-identity", a Secret of the agent's own. Layout shared: tailscaled's state
Secret.
*/}}
{{- define "ts-kube-agent.secretName" -}}
{{- if .Values.targets.secret.enabled }}
{{- if eq (include "ts-kube-agent.layout" .) "shared" }}
{{- include "ts-kube-agent.tailscaledStateSecret" . }}
{{- else }}
{{- .Values.targets.secret.name | default (printf "%s-identity" (include "ts-kube-agent.fullname" .)) }}
{{- end }}
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
    - name: TS_KUBE_FOREIGN_KEYS
      value: {{ $v.foreignKeys | default "skip" | quote }}
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
  {{- with $v.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
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
  {{- with $v.probes.startup }}
  {{- if .enabled }}
  startupProbe:
    httpGet:
      path: /livez
      port: {{ $port }}
    periodSeconds: {{ .periodSeconds | default 2 }}
    timeoutSeconds: {{ .timeoutSeconds | default 2 }}
    failureThreshold: {{ .failureThreshold | default 30 }}
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
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
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
{{- with .values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- if include "ts-kube-agent.configFile" $scope }}
- name: ts-kube-agent-config
  configMap:
    name: {{ printf "%s-config" (include "ts-kube-agent.fullname" $scope | trunc 56 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
tailscaled's state Secret (TS_KUBE_SECRET of the example's containerboot, or of your pod's
tailscaled): deployment.tailscaled.stateSecret, else (layout shared) targets.secret.name, else
"<fullname>".
*/}}
{{- define "ts-kube-agent.tailscaledStateSecret" -}}
{{- $state := .Values.deployment.tailscaled.stateSecret }}
{{- if eq (include "ts-kube-agent.layout" .) "shared" }}
{{- $state = $state | default .Values.targets.secret.name }}
{{- end }}
{{- $state | default (include "ts-kube-agent.fullname" .) }}
{{- end }}

{{/*
"true" when the chart knows tailscaled's state Secret: the example Deployment runs tailscaled,
or rbac.tailscaled grants your pod's tailscaled its access. Else "".
*/}}
{{- define "ts-kube-agent.managesTailscaled" -}}
{{- if or .Values.deployment.enabled (and .Values.rbac.create .Values.rbac.tailscaled) }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
"true" when the chart pre-creates tailscaled's state Secret: layout shared, where it is the
Secret target, by targets.secret.create; layout own by deployment.tailscaled.createStateSecret.
*/}}
{{- define "ts-kube-agent.stateSecretPrecreated" -}}
{{- if eq (include "ts-kube-agent.layout" .) "shared" }}
{{- if and .Values.targets.secret.enabled .Values.targets.secret.create }}
{{- "true" }}
{{- end }}
{{- else if and (include "ts-kube-agent.managesTailscaled" .) .Values.deployment.tailscaled.createStateSecret }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
A duration as the agent parses it (agent/config.cc, parseDuration: "0", or numbers with ms, s,
m, h, like 1m30s) in milliseconds, as a float. values.schema.json has already refused any other
form.
*/}}
{{- define "ts-kube-agent.durationMs" -}}
{{- $total := 0.0 }}
{{- $scale := dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0 }}
{{- range regexFindAll "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ms|s|m|h)" (toString .) -1 }}
{{- $unit := regexFind "(ms|s|m|h)$" . }}
{{- $total = addf $total (mulf (trimSuffix $unit . | float64) (get $scale $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Config-file options the chart sets through environment variables, which win over the config
file: setting them in `config` would be silently ignored. Option -> the value to use instead.
*/}}
{{- define "ts-kube-agent.envSetOptions" -}}
{{- toJson (dict "socket" "socket.dir and socket.file" "secret" "targets.secret.name" "configmap" "targets.configMap.name" "namespace" "the release namespace (-n)" "pod-uid" "nothing: the pod's UID is set from the downward API" "admin-addr" "metrics.bindAddress and metrics.port" "track-peers" "trackPeers" "log-format" "logFormat" "log-level" "logLevel" "shutdown-timeout" "shutdownTimeout" "create-objects" "targets.*.create and rbac.allowCreate" "foreign-keys" "foreignKeys" "secret-keys" "targets.secret.keys" "configmap-keys" "targets.configMap.keys") }}
{{- end }}

{{/* Fails with a clear message on values that cannot work. */}}
{{- define "ts-kube-agent.validate" -}}
{{- if not (or .Values.targets.secret.enabled .Values.targets.configMap.enabled) }}
{{- fail "targets: enable targets.secret or targets.configMap (or both); the agent needs somewhere to publish" }}
{{- end }}
{{- range $kind, $name := dict "targets.secret.name" (include "ts-kube-agent.secretName" .) "targets.configMap.name" (include "ts-kube-agent.configMapName" .) }}
{{- if and $name (or (gt (len $name) 253) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $name))) }}
{{- fail (printf "%s %q is not a valid object name: a DNS-1123 subdomain is at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. \"ts-state\")" $kind $name) }}
{{- end }}
{{- end }}
{{- $layout := include "ts-kube-agent.layout" . }}
{{- $state := include "ts-kube-agent.tailscaledStateSecret" . }}
{{- if not (has $layout (list "own" "shared")) }}
{{- fail (printf "layout must be own or shared, not %q" $layout) }}
{{- end }}
{{- if eq $layout "own" }}
{{- if and (include "ts-kube-agent.managesTailscaled" .) (eq (include "ts-kube-agent.secretName" .) $state) }}
{{- fail (printf "targets.secret.name %q is tailscaled's state Secret (deployment.tailscaled.stateSecret): with layout own the agent publishes to a Secret of its own, because containerboot writes device_id, device_fqdn and device_ips into its state Secret itself (docs/OPERATIONS.md, \"Layouts\"); name another Secret, or set layout=shared for plain tailscaled without containerboot" $state) }}
{{- end }}
{{- else }}
{{- if not .Values.targets.secret.enabled }}
{{- fail "layout shared: the agent writes the upstream keys into tailscaled's state Secret, so targets.secret.enabled must be true" }}
{{- end }}
{{- if and .Values.targets.secret.name .Values.deployment.tailscaled.stateSecret (ne .Values.targets.secret.name .Values.deployment.tailscaled.stateSecret) }}
{{- fail (printf "layout shared: targets.secret.name %q and deployment.tailscaled.stateSecret %q must name the same Secret (the agent writes into tailscaled's state Secret); set one of them" .Values.targets.secret.name .Values.deployment.tailscaled.stateSecret) }}
{{- end }}
{{- if .Values.deployment.enabled }}
{{- fail "layout shared is for plain tailscaled (tailscaled --state=kube:<secret>, no containerboot) in your own pod: the example Deployment runs containerboot, which writes device_id, device_fqdn and device_ips into its state Secret itself, so two writers would fight over them (docs/OPERATIONS.md, \"Layouts\"); set deployment.enabled=false, or keep layout own" }}
{{- end }}
{{- end }}
{{- if not (has (toString .Values.foreignKeys) (list "skip" "overwrite")) }}
{{- fail (printf "foreignKeys must be skip or overwrite, not %q" (toString .Values.foreignKeys)) }}
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
{{- /* shutdownTimeout: the agent accepts 0s to 1h (--shutdown-timeout); the kubelet kills the
pod at its grace period, so a flush as long as that never ends. */}}
{{- $shutdown := include "ts-kube-agent.durationMs" .Values.shutdownTimeout | float64 }}
{{- if gt $shutdown 3600000.0 }}
{{- fail (printf "shutdownTimeout %q is longer than the agent's bound of 1h" (toString .Values.shutdownTimeout)) }}
{{- end }}
{{- if .Values.deployment.enabled }}
{{- $grace := .Values.deployment.terminationGracePeriodSeconds | int }}
{{- if ge $shutdown (mulf $grace 1000.0) }}
{{- fail (printf "shutdownTimeout %q must be below deployment.terminationGracePeriodSeconds (%d s): the kubelet kills the pod at the grace period, before the agent's flush ends; lower shutdownTimeout or raise terminationGracePeriodSeconds" (toString .Values.shutdownTimeout) $grace) }}
{{- end }}
{{- end }}
{{- $cfg := .Values.config | default dict }}
{{- $envSet := include "ts-kube-agent.envSetOptions" . | fromJson }}
{{- range $key := keys $cfg | sortAlpha }}
{{- if hasKey $envSet $key }}
{{- fail (printf "config.%s is set by the chart through an environment variable, which wins over the config file: use %s instead" $key (get $envSet $key)) }}
{{- end }}
{{- end }}
{{- with (get $cfg "drift-check-interval") }}
{{- $d := include "ts-kube-agent.durationMs" . | float64 }}
{{- if and (ne $d 0.0) (or (lt $d 1000.0) (gt $d 86400000.0)) }}
{{- fail (printf "config.drift-check-interval %q must be 0 (only after a reconnect) or from 1s to 24h" (toString .)) }}
{{- end }}
{{- end }}
{{- with (get $cfg "publish-wait") }}
{{- $parts := splitList ":" (toString .) }}
{{- $lo := include "ts-kube-agent.durationMs" (first $parts) | float64 }}
{{- $hi := include "ts-kube-agent.durationMs" (last $parts) | float64 }}
{{- if eq (len $parts) 1 }}{{ $hi = mulf $lo 4.0 }}{{ end }}
{{- if or (gt $lo 3600000.0) (gt $hi 3600000.0) (lt $hi $lo) }}
{{- fail (printf "config.publish-wait %q must be MIN:MAX durations from 0s to 1h with MIN <= MAX, like 20ms:1s" (toString .)) }}
{{- end }}
{{- end }}
{{- if and .Values.trackPeers (eq (toString (get $cfg "start-mode")) "status-fetch") }}
{{- fail "trackPeers needs config.start-mode initial-status (status-fetch has no peer list)" }}
{{- end }}
{{- /* Native sidecars (restartPolicy: Always on an init container) are on by default from
Kubernetes 1.29; before, the API server drops the field and tailscaled, an init container that
never exits, keeps the pod in Init. */}}
{{- if and (eq (toString .Values.sidecar.mode) "native") (not (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "sidecar.mode native needs Kubernetes >= 1.29 (native sidecars), and this cluster is %s: use sidecar.mode auto or regular" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- $_ := include "ts-kube-agent.nativeSidecar" (dict "root" . "values" .Values) }}
{{- end }}
