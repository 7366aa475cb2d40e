{{/*
Facts about each component that are not user settings: the variables holding
its HTTP (admin) and gRPC listen addresses and its consumer group, whether it
talks to the schema registry, and whether it is a Kafka consumer (sink) that
KEDA may scale on lag. deployments/checks fails when a name here is not one
the service reads.
*/}}
{{- define "sluice.components" -}}
ingest-gateway:  {httpAddr: GATEWAY_HTTP_ADDR, grpcAddr: GATEWAY_GRPC_ADDR, groupVar: "", registry: true, sink: false}
schema-registry: {httpAddr: SCHEMA_REGISTRY_HTTP_ADDR, grpcAddr: SCHEMA_REGISTRY_GRPC_ADDR, groupVar: "", registry: false, sink: false}
s3-sink:         {httpAddr: S3_SINK_ADMIN_ADDR, grpcAddr: "", groupVar: S3_SINK_GROUP_ID, registry: true, sink: true}
search-sink:     {httpAddr: SEARCH_SINK_ADMIN_ADDR, grpcAddr: "", groupVar: SEARCH_SINK_GROUP_ID, registry: true, sink: true}
kafka-exporter:  {httpAddr: EXPORTER_ADMIN_ADDR, grpcAddr: "", groupVar: "", registry: false, sink: false}
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
  $c.httpAddr (printf ":%v" .svc.ports.http)
}}
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
