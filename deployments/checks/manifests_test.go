package checks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifest is one rendered document, strictly decoded.
type manifest struct {
	Source string // helm's "# Source:" comment
	Kind   string
	Name   string
	Obj    any // *appsv1.Deployment, ..., *scaledObject, *triggerAuthentication
}

// scaledObject mirrors KEDA's keda.sh/v1alpha1 ScaledObject (KEDA v2.x
// apis/keda/v1alpha1/scaledobject_types.go). KEDA's Go module drags in
// half of Kubernetes, so the fields are restated here and decoded strictly.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32         `json:"pollingInterval,omitempty"`
		InitialCooldown  *int32         `json:"initialCooldownPeriod,omitempty"`
		CooldownPeriod   *int32         `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount *int32         `json:"idleReplicaCount,omitempty"`
		MinReplicaCount  *int32         `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32         `json:"maxReplicaCount,omitempty"`
		Advanced         map[string]any `json:"advanced,omitempty"`
		Fallback         map[string]any `json:"fallback,omitempty"`
		Triggers         []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// triggerAuthentication mirrors KEDA's keda.sh/v1alpha1 TriggerAuthentication
// (the secretTargetRef form the chart renders).
type triggerAuthentication struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
	} `json:"spec"`
}

// kedaKafkaMetadata are the kafka scaler's trigger parameters (KEDA docs,
// scalers/apache-kafka); anything else is a typo KEDA would ignore or reject.
var kedaKafkaMetadata = map[string]bool{
	"bootstrapServers": true, "consumerGroup": true, "topic": true, "lagThreshold": true,
	"activationLagThreshold": true, "offsetResetPolicy": true, "allowIdleConsumers": true,
	"excludePersistentLag": true, "scaleToZeroOnInvalidOffset": true, "limitToPartitionsWithLag": true,
	"ensureEvenDistributionOfPartitions": true, "partitionLimitation": true, "version": true,
	"sasl": true, "tls": true, "unsafeSsl": true,
}

// kedaAuthParams are the kafka scaler's TriggerAuthentication parameters.
var kedaAuthParams = map[string]bool{"sasl": true, "username": true, "password": true, "tls": true, "ca": true, "cert": true, "key": true, "keyPassword": true}

func newDecoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err) // static registration; cannot fail at run time
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeManifests splits helm output into documents and decodes each into
// its k8s.io/api (or monitoring / KEDA) type with unknown and duplicate
// fields rejected. Every failing document is reported.
func decodeManifests(out string) ([]manifest, []error) {
	dec := newDecoder()
	var docs []manifest
	var errs []error
	r := kyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("splitting documents: %w", err))
			break
		}
		src := ""
		empty := true
		for _, line := range strings.Split(string(raw), "\n") {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, "# Source: ") && src == "" {
				src = strings.TrimPrefix(t, "# Source: ")
			}
			if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
				empty = false
			}
		}
		if empty {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		m := manifest{Source: src, Kind: head.Kind, Name: head.Metadata.Name}
		switch head.APIVersion {
		case "keda.sh/v1alpha1":
			switch head.Kind {
			case "ScaledObject":
				m.Obj = new(scaledObject)
			case "TriggerAuthentication":
				m.Obj = new(triggerAuthentication)
			default:
				errs = append(errs, fmt.Errorf("%s: unknown KEDA kind %s", src, head.Kind))
				continue
			}
			if err := yaml.UnmarshalStrict(raw, m.Obj); err != nil {
				errs = append(errs, fmt.Errorf("%s %s/%s: %w", src, head.Kind, head.Metadata.Name, err))
				continue
			}
		default:
			obj, _, err := dec.Decode(raw, nil, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s/%s: %w", src, head.Kind, head.Metadata.Name, err))
				continue
			}
			m.Obj = obj
		}
		docs = append(docs, m)
	}
	return docs, errs
}

// checkManifests applies Sluice's rules to a rendered release and returns
// one message per violation.
func checkManifests(docs []manifest, envs map[string]envSpec) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	deployments := map[string]*appsv1.Deployment{}
	configMaps := map[string]*corev1.ConfigMap{}
	svcs := map[string]*corev1.Service{}
	accounts := map[string]bool{}
	hpaTargets := map[string]bool{}
	auths := map[string]bool{}
	names := map[string]bool{}
	for _, d := range docs {
		key := d.Kind + "/" + d.Name
		if names[key] {
			addf("%s rendered twice", key)
		}
		names[key] = true
		problems = append(problems, checkNames(key, d)...)
		switch o := d.Obj.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = o
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Service:
			svcs[o.Name] = o
		case *corev1.ServiceAccount:
			accounts[o.Name] = true
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpaTargets[o.Spec.ScaleTargetRef.Name] = true
		case *triggerAuthentication:
			auths[o.Metadata.Name] = true
		}
	}
	matchDeployment := func(what string, sel *metav1.LabelSelector) *appsv1.Deployment {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			addf("%s: empty or invalid selector", what)
			return nil
		}
		var found *appsv1.Deployment
		for _, name := range sortedKeys(deployments) {
			if s.Matches(labels.Set(deployments[name].Spec.Template.Labels)) {
				if found != nil {
					addf("%s: selector matches pods of both %s and %s", what, found.Name, name)
				}
				found = deployments[name]
			}
		}
		if found == nil {
			addf("%s: selector %s matches no Deployment's pods", what, s)
		}
		return found
	}
	for _, name := range sortedKeys(deployments) {
		d := deployments[name]
		what := "Deployment/" + name
		component := d.Spec.Template.Labels["app.kubernetes.io/component"]
		spec, known := envs[component]
		if !known {
			addf("%s: pod label app.kubernetes.io/component=%q is not a Sluice service", what, component)
		}
		if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || s.Empty() || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
			addf("%s: selector %v does not match its pod labels %v", what, d.Spec.Selector, d.Spec.Template.Labels)
		}
		if hpaTargets[name] && d.Spec.Replicas != nil {
			addf("%s: sets replicas although an HPA scales it (every upgrade would reset the count)", what)
		}
		if sa := d.Spec.Template.Spec.ServiceAccountName; sa != "" && sa != "default" && !accounts[sa] {
			addf("%s: service account %s is not rendered", what, sa)
		}
		problems = append(problems, checkPod(what, &d.Spec.Template.Spec, true)...)
		volumes := map[string]bool{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			volumes[v.Name] = true
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			cwhat := what + " container " + c.Name
			var set []string
			cmEnv := map[string]string{}
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" && e.Value != "" {
					limit := c.Resources.Limits.Memory().Value()
					if n, ok := parseGoMemLimit(e.Value); !ok || limit == 0 || n >= limit {
						addf("%s: GOMEMLIMIT=%s must parse and stay below the memory limit %s", cwhat, e.Value, c.Resources.Limits.Memory())
					}
				}
			}
			// Entries only there to be composed into another ($(VAR)
			// expansion) are not variables the service reads.
			composed := composedEnv(c.Env)
			for i, e := range c.Env {
				if !composed[e.Name] {
					set = append(set, e.Name)
				}
				if known && spec.Secrets[e.Name] && e.Value != "" && !composedOfSecrets(e.Name, e.Value, c.Env[:i]) {
					addf("%s: secret %s given as a literal value; use valueFrom secretKeyRef", cwhat, e.Name)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				cm, ok := configMaps[ef.ConfigMapRef.Name]
				if !ok {
					addf("%s: envFrom ConfigMap %s is not rendered", cwhat, ef.ConfigMapRef.Name)
					continue
				}
				for k, v := range cm.Data {
					set = append(set, k)
					cmEnv[k] = v
					if known && spec.Secrets[k] {
						addf("%s: secret %s is in ConfigMap %s; use a Secret (envFrom secretRef or extraEnv secretKeyRef)", cwhat, k, cm.Name)
					}
				}
			}
			if known {
				for _, v := range unknownVars(spec, set) {
					addf("%s: sets %s, which %s does not read", cwhat, v, component)
				}
			}
			ports := map[int32]string{}
			for _, p := range c.Ports {
				ports[p.ContainerPort] = p.Name
			}
			// SIGKILL must not cut the drain short: the grace period has to
			// cover SHUTDOWN_DELAY (readiness 503) plus SHUTDOWN_TIMEOUT (flush
			// and commit).
			if grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds; grace != nil {
				var need time.Duration
				for _, k := range []string{"SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
					if v, ok := cmEnv[k]; ok {
						dur, err := time.ParseDuration(v)
						if err != nil {
							addf("%s: %s=%q is not a duration", cwhat, k, v)
						}
						need += dur
					}
				}
				if time.Duration(*grace)*time.Second <= need {
					addf("%s: terminationGracePeriodSeconds %d does not exceed SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%s)", cwhat, *grace, need)
				}
			}
			for _, k := range sortedKeys(cmEnv) {
				if !isListenAddr(k) {
					continue
				}
				if p, ok := portOf(cmEnv[k]); !ok || ports[int32(p)] == "" {
					addf("%s: %s=%s listens on a port the container does not declare", cwhat, k, cmEnv[k])
				}
			}
			if want, ok := designPorts[component]; ok {
				for _, p := range []struct {
					name string
					port int
				}{{"http", want.API}, {"grpc", want.GRPC}, {"metrics", adminPorts[component]}} {
					if p.port != 0 && ports[int32(p.port)] != p.name {
						addf("%s: no container port %s=%d (DESIGN.md API ports, admin port %d)", cwhat, p.name, p.port, adminPorts[component])
					}
				}
			}
			// Kubernetes expands $(VAR) from envFrom and earlier env entries
			// only; anything else stays literally in the value.
			for i, e := range c.Env {
				for _, ref := range envRefs(e.Value) {
					_, fromCM := cmEnv[ref]
					if !fromCM && !slices.ContainsFunc(c.Env[:i], func(o corev1.EnvVar) bool { return o.Name == ref }) {
						addf("%s: %s references $(%s), which no earlier env entry or envFrom ConfigMap defines (it would stay unexpanded)", cwhat, e.Name, ref)
					}
				}
			}
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					addf("%s: volumeMount %s has no volume", cwhat, vm.Name)
				}
			}
		}
	}
	for _, d := range docs {
		what := d.Kind + "/" + d.Name
		switch o := d.Obj.(type) {
		case *corev1.Service:
			dep := matchDeployment(what, &metav1.LabelSelector{MatchLabels: o.Spec.Selector})
			if dep != nil {
				for _, p := range o.Spec.Ports {
					if !podHasPort(&dep.Spec.Template.Spec, p.TargetPort.String()) {
						addf("%s: targetPort %s is not a port of %s", what, p.TargetPort.String(), dep.Name)
					}
				}
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if o.Spec.ScaleTargetRef.Kind != "Deployment" || deployments[o.Spec.ScaleTargetRef.Name] == nil {
				addf("%s: scales %s/%s, which is not rendered", what, o.Spec.ScaleTargetRef.Kind, o.Spec.ScaleTargetRef.Name)
			}
			if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas {
				addf("%s: minReplicas %d > maxReplicas %d", what, *o.Spec.MinReplicas, o.Spec.MaxReplicas)
			}
			if len(o.Spec.Metrics) == 0 {
				addf("%s: no metrics", what)
			}
		case *policyv1.PodDisruptionBudget:
			matchDeployment(what, o.Spec.Selector)
		case *networkingv1.NetworkPolicy:
			dep := matchDeployment(what, &o.Spec.PodSelector)
			if dep != nil {
				for _, rule := range o.Spec.Ingress {
					for _, p := range rule.Ports {
						if p.Port != nil && !podHasPort(&dep.Spec.Template.Spec, p.Port.String()) {
							addf("%s: allows port %s, not a port of %s", what, p.Port.String(), dep.Name)
						}
					}
				}
			}
		case *networkingv1.Ingress:
			for _, r := range o.Spec.Rules {
				if r.HTTP == nil {
					continue
				}
				for _, p := range r.HTTP.Paths {
					b := p.Backend.Service
					if b == nil {
						continue
					}
					s, ok := svcs[b.Name]
					if !ok {
						addf("%s: backend Service %s is not rendered", what, b.Name)
						continue
					}
					if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
						return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
					}) {
						addf("%s: backend port %s%d is not a port of Service %s", what, b.Port.Name, b.Port.Number, b.Name)
					}
				}
			}
		case *monitoringv1.ServiceMonitor:
			sel, err := metav1.LabelSelectorAsSelector(&o.Spec.Selector)
			var target *corev1.Service
			for _, n := range sortedKeys(svcs) {
				if err == nil && !sel.Empty() && sel.Matches(labels.Set(svcs[n].Labels)) {
					target = svcs[n]
				}
			}
			if target == nil {
				addf("%s: selects no rendered Service", what)
				continue
			}
			for _, ep := range o.Spec.Endpoints {
				if !slices.ContainsFunc(target.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == ep.Port }) {
					addf("%s: endpoint port %q is not a port of Service %s", what, ep.Port, target.Name)
				}
			}
		case *monitoringv1.PrometheusRule:
			if len(o.Spec.Groups) == 0 {
				addf("%s: no rule groups", what)
			}
			for _, g := range o.Spec.Groups {
				for _, r := range g.Rules {
					if r.Expr.String() == "" || (r.Alert == "") == (r.Record == "") {
						addf("%s: group %s has a rule without expr or with neither/both alert and record", what, g.Name)
					}
				}
			}
		case *corev1.Pod:
			if o.Annotations["helm.sh/hook"] != "test" {
				addf("%s: a bare Pod that is not a helm test hook", what)
			}
			problems = append(problems, checkPod(what, &o.Spec, false)...)
		case *scaledObject:
			t := o.Spec.ScaleTargetRef
			dep := deployments[t.Name]
			if dep == nil || (t.Kind != "" && t.Kind != "Deployment") {
				addf("%s: scales %s/%s, which is not rendered", what, t.Kind, t.Name)
			}
			if hpaTargets[t.Name] {
				addf("%s: %s is also scaled by a chart HPA (KEDA creates its own)", what, t.Name)
			}
			if len(o.Spec.Triggers) == 0 {
				addf("%s: no triggers", what)
			}
			for _, tr := range o.Spec.Triggers {
				problems = append(problems, checkKafkaTrigger(what, tr.Type, tr.Metadata)...)
				if tr.AuthenticationRef != nil && !auths[tr.AuthenticationRef.Name] {
					addf("%s: authenticationRef %s is not rendered", what, tr.AuthenticationRef.Name)
				}
				if dep != nil {
					// The sink must commit to the group KEDA watches.
					for _, cm := range configMaps {
						if cm.Labels["app.kubernetes.io/component"] != dep.Spec.Template.Labels["app.kubernetes.io/component"] {
							continue
						}
						for k, v := range cm.Data {
							if strings.HasSuffix(k, "_GROUP_ID") && v != tr.Metadata["consumerGroup"] {
								addf("%s: watches group %q but the sink commits to %s=%q", what, tr.Metadata["consumerGroup"], k, v)
							}
						}
					}
				}
			}
		case *triggerAuthentication:
			for _, ref := range o.Spec.SecretTargetRef {
				if !kedaAuthParams[ref.Parameter] || ref.Name == "" || ref.Key == "" {
					addf("%s: bad secretTargetRef %+v", what, ref)
				}
			}
		}
	}
	return append(problems, checkExposure(docs, envs)...)
}

// checkNames applies the API server's name and label validation, which a
// strict decode does not: object names (DNS-1035 labels for Services),
// label keys and values, container and port names, env var names.
func checkNames(what string, d manifest) []string {
	var problems []string
	report := func(field string, errs []string) {
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s: %s: %s", what, field, e))
		}
	}
	var labelSet map[string]string
	if o, err := meta.Accessor(d.Obj); err == nil {
		labelSet = o.GetLabels()
	} else if so, ok := d.Obj.(*scaledObject); ok {
		labelSet = so.Metadata.Labels
	} else if ta, ok := d.Obj.(*triggerAuthentication); ok {
		labelSet = ta.Metadata.Labels
	}
	if d.Kind == "Service" {
		report("name "+d.Name, validation.IsDNS1035Label(d.Name))
	} else {
		report("name "+d.Name, validation.IsDNS1123Subdomain(d.Name))
	}
	for k, v := range labelSet {
		report("label "+k, validation.IsQualifiedName(k))
		report("label "+k, validation.IsValidLabelValue(v))
	}
	var pod *corev1.PodSpec
	switch o := d.Obj.(type) {
	case *appsv1.Deployment:
		pod = &o.Spec.Template.Spec
		for k, v := range o.Spec.Template.Labels {
			report("pod label "+k, validation.IsQualifiedName(k))
			report("pod label "+k, validation.IsValidLabelValue(v))
		}
	case *corev1.Pod:
		pod = &o.Spec
	case *corev1.Service:
		for _, p := range o.Spec.Ports {
			report("port name "+p.Name, validation.IsValidPortName(p.Name))
		}
	case *corev1.ConfigMap:
		for k := range o.Data {
			report("key "+k, validation.IsConfigMapKey(k))
		}
	case *corev1.Secret:
		for k := range o.Data {
			report("key "+k, validation.IsConfigMapKey(k))
		}
	}
	if pod != nil {
		for _, c := range pod.Containers {
			report("container "+c.Name, validation.IsDNS1123Label(c.Name))
			for _, p := range c.Ports {
				report("port name "+p.Name, validation.IsValidPortName(p.Name))
			}
			for _, e := range c.Env {
				report("env "+e.Name, validation.IsEnvVarName(e.Name))
			}
		}
		for _, v := range pod.Volumes {
			report("volume "+v.Name, validation.IsDNS1123Label(v.Name))
		}
	}
	return problems
}

func checkKafkaTrigger(what, typ string, md map[string]string) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if typ != "kafka" {
		addf("%s: trigger type %q, want kafka", what, typ)
	}
	for _, k := range sortedKeys(md) {
		if !kedaKafkaMetadata[k] {
			addf("%s: unknown kafka trigger parameter %q", what, k)
		}
	}
	if md["bootstrapServers"] == "" || md["consumerGroup"] == "" {
		addf("%s: bootstrapServers and consumerGroup are required", what)
	}
	for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
		if v, ok := md[k]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || (k == "lagThreshold" && n == 0) {
				addf("%s: %s=%q is not a valid count", what, k, v)
			}
		}
	}
	allowed := map[string][]string{
		"sasl": {"plaintext", "scram_sha256", "scram_sha512", "gssapi", "oauthbearer", "none"},
		"tls":  {"enable", "disable"}, "offsetResetPolicy": {"earliest", "latest"},
	}
	for k, vals := range allowed {
		if v, ok := md[k]; ok && !slices.Contains(vals, v) {
			addf("%s: %s=%q, want one of %v", what, k, v, vals)
		}
	}
	return problems
}

// checkPod requires the restricted security profile, resources and (for
// services) /healthz and /readyz probes on every container.
func checkPod(what string, pod *corev1.PodSpec, probes bool) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		addf("%s: mounts a service account token it does not need", what)
	}
	all := append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...)
	if len(pod.Containers) == 0 {
		addf("%s: no containers", what)
	}
	for _, c := range all {
		cwhat := what + " container " + c.Name
		if c.Image == "" || !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
			addf("%s: image %q has no tag or digest", cwhat, c.Image)
		}
		if probes {
			checkProbe := func(kind string, p *corev1.Probe, path string) {
				if p == nil || p.HTTPGet == nil {
					addf("%s: no %s probe (HTTP GET %s)", cwhat, kind, path)
					return
				}
				if p.HTTPGet.Path != path {
					addf("%s: %s probe GETs %s, want %s", cwhat, kind, p.HTTPGet.Path, path)
				}
				if !podHasPort(pod, p.HTTPGet.Port.String()) {
					addf("%s: %s probe port %s is not a container port", cwhat, kind, p.HTTPGet.Port.String())
				}
			}
			checkProbe("liveness", c.LivenessProbe, "/healthz")
			checkProbe("readiness", c.ReadinessProbe, "/readyz")
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() {
			addf("%s: resources.requests needs cpu and memory", cwhat)
		}
		if lim.Memory().IsZero() {
			addf("%s: resources.limits needs memory", cwhat)
		}
		sc := c.SecurityContext
		if sc == nil {
			addf("%s: no securityContext", cwhat)
			continue
		}
		if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
			addf("%s: runAsNonRoot is not true", cwhat)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			addf("%s: readOnlyRootFilesystem is not true", cwhat)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			addf("%s: allowPrivilegeEscalation is not false", cwhat)
		}
		if isTrue(sc.Privileged) {
			addf("%s: privileged", cwhat)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			addf("%s: capabilities must drop ALL and add none", cwhat)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			addf("%s: seccompProfile is not RuntimeDefault", cwhat)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			addf("%s: runs as uid 0", cwhat)
		}
	}
	return problems
}

// parseGoMemLimit parses a GOMEMLIMIT value (bytes with an optional B,
// KiB, MiB, GiB or TiB suffix), as the Go runtime does.
func parseGoMemLimit(v string) (int64, bool) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n * mult, err == nil && n >= 0
}

func podHasPort(pod *corev1.PodSpec, port string) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
				return true
			}
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// renderYAML re-encodes decoded objects (for defect injection on real output).
func renderYAML(objs ...any) string {
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.String()
}

// clientAddrs are *_ADDR variables naming another service's address (a
// client setting), not one the container listens on.
var clientAddrs = map[string]bool{"REGISTRY_GRPC_ADDR": true}

// isListenAddr reports whether variable k is a listen address.
func isListenAddr(k string) bool { return strings.HasSuffix(k, "_ADDR") && !clientAddrs[k] }
