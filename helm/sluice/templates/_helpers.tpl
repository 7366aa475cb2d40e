{{/*
Facts about each component that are not user settings: the variables holding
its API (HTTP and gRPC) and admin (/metrics, /healthz, /readyz) listen
addresses and its consumer group, whether it talks to the schema registry,
and whether it is a Kafka consumer (sink) that KEDA may scale on lag. The
admin address is set from ports.metrics, the API ones from ports.http and
ports.grpc. deployments/checks fails when a name here is not one the service
reads.
*/}}
{{- define "sluice.components" -}}
ingest-gateway:  {apiAddr: GATEWAY_HTTP_ADDR, grpcAddr: GATEWAY_GRPC_ADDR, adminAddr: GATEWAY_ADMIN_ADDR, groupVar: "", registry: true, sink: false}
schema-registry: {apiAddr: SCHEMA_REGISTRY_HTTP_ADDR, grpcAddr: SCHEMA_REGISTRY_GRPC_ADDR, adminAddr: SCHEMA_REGISTRY_ADMIN_ADDR, groupVar: "", registry: false, sink: false}
s3-sink:         {apiAddr: "", grpcAddr: "", adminAddr: S3_SINK_ADMIN_ADDR, groupVar: S3_SINK_GROUP_ID, registry: true, sink: true}
search-sink:     {apiAddr: "", grpcAddr: "", adminAddr: SEARCH_SINK_ADMIN_ADDR, groupVar: SEARCH_SINK_GROUP_ID, registry: true, sink: true}
kafka-exporter:  {apiAddr: "", grpcAddr: "", adminAddr: EXPORTER_ADMIN_ADDR, groupVar: "", registry: false, sink: false}
{{- end }}

{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluice.fullname" -}}
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

{{/* Name of one component's objects: <fullname>-<component>. Call with (dict "root" $ "name" $name). */}}
{{- define "sluice.componentName" -}}
{{- printf "%s-%s" (include "sluice.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "name" $name). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* All labels of one component. Call with (dict "root" $ "name" $name). */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" .root }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{/* Labels shared by every pod of the release (NetworkPolicy peers). */}}
{{- define "sluice.releaseSelector" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .svc.serviceAccount.create }}
{{- default (include "sluice.componentName" .) .svc.serviceAccount.name }}
{{- else }}
{{- default "default" .svc.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.image" -}}
{{- $img := .root.Values.image }}
{{- $repo := default (printf "%s/%s" $img.registry .name) .svc.image.repository }}
{{- $tag := default (default .root.Chart.AppVersion $img.tag) .svc.image.tag }}
{{- if .svc.image.digest }}
{{- printf "%s@%s" $repo .svc.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{- define "sluice.registryURL" -}}
{{- if .Values.registry.url }}
{{- .Values.registry.url }}
{{- else }}
{{- $svc := index .Values.services "schema-registry" }}
{{- printf "http://%s:%v" (include "sluice.componentName" (dict "root" . "name" "schema-registry")) $svc.ports.http }}
{{- end }}
{{- end }}

{{/* True when a sink is scaled by KEDA instead of a plain HPA. */}}
{{- define "sluice.kedaEnabled" -}}
{{- if and .svc.keda .svc.keda.enabled }}true{{ end }}
{{- end }}

{{/*
The non-secret environment of one component, as YAML (rendered into its
ConfigMap and hashed into the pod template so a change rolls the pods).
Call with (dict "root" $ "name" $name "svc" $svc).
*/}}
{{- define "sluice.env" -}}
{{- $root := .root }}
{{- $c := index (include "sluice.components" $root | fromYaml) .name }}
{{- $kafka := $root.Values.kafka }}
{{- $env := dict
  "LOG_LEVEL" $root.Values.logLevel
  "SHUTDOWN_TIMEOUT" $root.Values.shutdownTimeout
  "SHUTDOWN_DELAY" $root.Values.shutdownDelay
  "KAFKA_BROKERS" (join "," $kafka.brokers)
  "KAFKA_CLIENT_ID" (printf "sluice-%s" .name)
  $c.adminAddr (printf ":%v" .svc.ports.metrics)
}}
{{- if and $c.apiAddr .svc.ports.http }}{{ $_ := set $env $c.apiAddr (printf ":%v" .svc.ports.http) }}{{ end }}
{{- if and $c.grpcAddr .svc.ports.grpc }}{{ $_ := set $env $c.grpcAddr (printf ":%v" .svc.ports.grpc) }}{{ end }}
{{- if and $c.groupVar .svc.consumerGroup }}{{ $_ := set $env $c.groupVar .svc.consumerGroup }}{{ end }}
{{- if $kafka.tls.enabled }}
{{- $_ := set $env "KAFKA_TLS_ENABLED" "true" }}
{{- if $kafka.tls.caSecret }}{{ $_ := set $env "KAFKA_TLS_CA_FILE" "/etc/sluice/kafka-ca/ca.crt" }}{{ end }}
{{- if $kafka.tls.clientCertSecret }}
{{- $_ := set $env "KAFKA_TLS_CERT_FILE" "/etc/sluice/kafka-client/tls.crt" }}
{{- $_ := set $env "KAFKA_TLS_KEY_FILE" "/etc/sluice/kafka-client/tls.key" }}
{{- end }}
{{- if $kafka.tls.serverName }}{{ $_ := set $env "KAFKA_TLS_SERVER_NAME" $kafka.tls.serverName }}{{ end }}
{{- end }}
{{- if $kafka.sasl.mechanism }}{{ $_ := set $env "KAFKA_SASL_MECHANISM" $kafka.sasl.mechanism }}{{ end }}
{{- if $c.registry }}{{ $_ := set $env "REGISTRY_URL" (include "sluice.registryURL" $root) }}{{ end }}
{{- range $m := .svc.fileMounts }}
{{- range $k, $file := $m.env }}{{ $_ := set $env $k (printf "/etc/sluice/files/%s/%s" $m.name $file) }}{{ end }}
{{- end }}
{{- range $k, $v := .svc.env }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- range $k := keys $env | sortAlpha }}
{{ $k }}: {{ index $env $k | quote }}
{{- end }}
{{- end }}


{{/* True when the chart wires basic auth between the registry and its clients. */}}
{{- define "sluice.registryAuth" -}}
{{- if .Values.registry.auth.enabled }}true{{ end }}
{{- end }}

{{/* The Secret holding the registry users: the user's, or the one the chart generates. */}}
{{- define "sluice.registryAuthSecret" -}}
{{- default (printf "%s-registry-auth" (include "sluice.fullname" .)) .Values.registry.auth.existingSecret }}
{{- end }}

{{/*
env entries giving a registry client (REGISTRY_USERNAME / REGISTRY_PASSWORD)
the credentials of one user of the registry auth Secret. Call with
(dict "root" $ "user" "reader"|"admin").
*/}}
{{- define "sluice.registryClientEnv" -}}
{{- $secret := include "sluice.registryAuthSecret" .root }}
- name: REGISTRY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .user }}-username
- name: REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .user }}-password
{{- end }}

{{/*
env entries of the registry itself: each user's name and password from the
Secret, then SCHEMA_REGISTRY_AUTH_USERS composed of them by Kubernetes'
$(VAR) expansion, so no password is in the pod spec or a ConfigMap.
*/}}
{{- define "sluice.registryServerEnv" -}}
{{- $secret := include "sluice.registryAuthSecret" . }}
{{- range $user := list "reader" "admin" }}
{{- range $part := list "username" "password" }}
- name: SLUICE_REGISTRY_{{ upper $user }}_{{ upper $part }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $user }}-{{ $part }}
{{- end }}
{{- end }}
- name: SCHEMA_REGISTRY_AUTH_USERS
  value: "$(SLUICE_REGISTRY_READER_USERNAME):$(SLUICE_REGISTRY_READER_PASSWORD):ro,$(SLUICE_REGISTRY_ADMIN_USERNAME):$(SLUICE_REGISTRY_ADMIN_PASSWORD):rw"
{{- end }}
