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

{{/*
An image reference with global.imageRegistry applied: it replaces the first
path element when that is a registry host (has a dot or a port, or is
localhost), else it is prepended. Call with (dict "root" $ "ref" "host/path").
*/}}
{{- define "sluice.withRegistry" -}}
{{- $g := .root.Values.global.imageRegistry }}
{{- if $g }}
{{- $parts := splitList "/" .ref }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- printf "%s/%s" $g (join "/" (rest $parts)) }}
{{- else }}
{{- printf "%s/%s" $g .ref }}
{{- end }}
{{- else }}
{{- .ref }}
{{- end }}
{{- end }}

{{- define "sluice.image" -}}
{{- $img := .root.Values.image }}
{{- $repo := default (printf "%s/%s" $img.registry .name) .svc.image.repository }}
{{- $repo = include "sluice.withRegistry" (dict "root" .root "ref" $repo) }}
{{- $tag := default (default .root.Chart.AppVersion $img.tag) .svc.image.tag }}
{{- if .svc.image.digest }}
{{- printf "%s@%s" $repo .svc.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/* imagePullSecrets of every pod: global.imagePullSecrets (names or {name}) then imagePullSecrets. */}}
{{- define "sluice.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat (default list .Values.global.imagePullSecrets) (default list .Values.imagePullSecrets)) }}
{{- $n := ternary . (get (kindIs "map" . | ternary . dict) "name") (kindIs "string" .) }}
{{- if not (has $n $names) }}{{ $names = append $names $n }}{{ end }}
{{- end }}
{{- if $names }}
imagePullSecrets:
{{- range $names }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The settings a service cannot start without; rendering fails with a
message naming the value while one is missing for an enabled service.
*/}}
{{- define "sluice.validateRequired" -}}
{{- $svcs := .Values.services }}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers is required: the Kafka bootstrap brokers as host:port, e.g. --set kafka.brokers={kafka-0.kafka:9092}" }}
{{- end }}
{{- if and (index $svcs "ingest-gateway").enabled (not .Values.gateway.topics) }}
{{- fail "gateway.topics is required: the topics or glob patterns producers may write to (GATEWAY_TOPICS), e.g. --set gateway.topics={orders,payments}; \"*\" allows every non-internal topic" }}
{{- end }}
{{- if (index $svcs "s3-sink").enabled }}
{{- if not .Values.s3.bucket }}
{{- fail "s3.bucket is required while services.s3-sink.enabled: the bucket s3-sink writes to (S3_BUCKET)" }}
{{- end }}
{{- if not (or .Values.s3.topics .Values.s3.topicRegex) }}
{{- fail "s3.topics or s3.topicRegex is required while services.s3-sink.enabled: the topics s3-sink archives (S3_SINK_TOPICS / S3_SINK_TOPIC_REGEX)" }}
{{- end }}
{{- if and .Values.s3.topics .Values.s3.topicRegex }}
{{- fail "s3.topics and s3.topicRegex are exclusive: set one (s3-sink refuses both)" }}
{{- end }}
{{- end }}
{{- if and (index $svcs "search-sink").enabled (not .Values.search.url) }}
{{- fail "search.url is required while services.search-sink.enabled: the Elasticsearch or OpenSearch URL(s) search-sink indexes into (ES_URL)" }}
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

{{/* REGISTRY_GRPC_ADDR for the registry's clients; empty: REST only. */}}
{{- define "sluice.registryGRPCAddr" -}}
{{- $g := .Values.registry.grpc }}
{{- if $g.enabled }}
{{- if $g.addr }}
{{- $g.addr }}
{{- else if and (not .Values.registry.url) (index .Values.services "schema-registry").enabled }}
{{- $svc := index .Values.services "schema-registry" }}
{{- printf "%s:%v" (include "sluice.componentName" (dict "root" . "name" "schema-registry")) $svc.ports.grpc }}
{{- end }}
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
{{- $grpcAddr := include "sluice.registryGRPCAddr" $root }}
{{- if and $c.registry $grpcAddr }}{{ $_ := set $env "REGISTRY_GRPC_ADDR" $grpcAddr }}{{ end }}
{{- $v := $root.Values }}
{{- if eq .name "ingest-gateway" }}
{{- $_ := set $env "GATEWAY_TOPICS" (join "," $v.gateway.topics) }}
{{- if $v.gateway.deadLetterTopics }}{{ $_ := set $env "GATEWAY_DEAD_LETTER_TOPICS" (join "," $v.gateway.deadLetterTopics) }}{{ end }}
{{- end }}
{{- if eq .name "s3-sink" }}
{{- $_ := set $env "S3_BUCKET" $v.s3.bucket }}
{{- if $v.s3.region }}{{ $_ := set $env "S3_REGION" $v.s3.region }}{{ end }}
{{- if $v.s3.endpoint }}{{ $_ := set $env "S3_ENDPOINT" $v.s3.endpoint }}{{ end }}
{{- if $v.s3.forcePathStyle }}{{ $_ := set $env "S3_FORCE_PATH_STYLE" "true" }}{{ end }}
{{- if $v.s3.topics }}{{ $_ := set $env "S3_SINK_TOPICS" (join "," $v.s3.topics) }}{{ end }}
{{- if $v.s3.topicRegex }}{{ $_ := set $env "S3_SINK_TOPIC_REGEX" $v.s3.topicRegex }}{{ end }}
{{- end }}
{{- if eq .name "search-sink" }}{{ $_ := set $env "ES_URL" $v.search.url }}{{ end }}
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
