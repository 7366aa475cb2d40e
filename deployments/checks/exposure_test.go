package checks

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// This file checks what each port of a rendered release serves and who may
// reach it: /metrics and health only on the admin port (never on an API
// port, so an Ingress to the API never publishes /metrics), NetworkPolicy
// rules that never open an API port to scrapers, and the schema registry's
// credentials travelling only through Secrets, each client with the least
// role that works.

// envRefs returns the $(VAR) references Kubernetes expands in an env value
// ($$ escapes a literal $).
func envRefs(v string) []string {
	var refs []string
	for i := 0; i+1 < len(v); i++ {
		if v[i] != '$' {
			continue
		}
		if v[i+1] == '$' {
			i++
			continue
		}
		if v[i+1] == '(' {
			if j := strings.IndexByte(v[i+2:], ')'); j > 0 {
				refs = append(refs, v[i+2:i+2+j])
				i += j + 2
			}
		}
	}
	return refs
}

// composedEnv names the env entries taken from a Secret only to be composed
// into a later entry by $(VAR) expansion (the registry's users): they are
// not variables the service reads.
func composedEnv(env []corev1.EnvVar) map[string]bool {
	out := map[string]bool{}
	for i, e := range env {
		for _, ref := range envRefs(e.Value) {
			for _, prev := range env[:i] {
				if prev.Name == ref && prev.ValueFrom != nil && prev.ValueFrom.SecretKeyRef != nil {
					out[ref] = true
				}
			}
		}
	}
	return out
}

// secretFields returns the secret parts of a secret variable's value: the
// password of each SCHEMA_REGISTRY_AUTH_USERS entry (user:password:role),
// the token of each SCHEMA_REGISTRY_AUTH_TOKENS entry (token:role), or else
// the whole value.
func secretFields(name, v string) []string {
	var out []string
	switch name {
	case "SCHEMA_REGISTRY_AUTH_USERS":
		for _, u := range strings.Split(v, ",") {
			i, j := strings.IndexByte(u, ':'), strings.LastIndexByte(u, ':')
			if i < 0 || j <= i {
				out = append(out, u)
				continue
			}
			out = append(out, u[i+1:j])
		}
	case "SCHEMA_REGISTRY_AUTH_TOKENS":
		for _, t := range strings.Split(v, ",") {
			if j := strings.LastIndexByte(t, ':'); j >= 0 {
				t = t[:j]
			}
			out = append(out, t)
		}
	default:
		out = []string{v}
	}
	return out
}

// composedOfSecrets reports whether every secret part of a literal value is
// exactly one $(VAR) naming an earlier entry taken from a Secret, so the
// pod spec holds no secret itself.
func composedOfSecrets(name, value string, earlier []corev1.EnvVar) bool {
	for _, f := range secretFields(name, value) {
		f = strings.TrimSpace(f)
		refs := envRefs(f)
		if len(refs) != 1 || f != "$("+refs[0]+")" || secretRefOf(earlier, refs[0]) == "" {
			return false
		}
	}
	return true
}

// secretRefOf returns "secret/key" of the env entry named name when it is
// taken from a Secret, else "".
func secretRefOf(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return ""
}

// registryUser is one user of SCHEMA_REGISTRY_AUTH_USERS, by the Secret keys
// its name and password come from.
type registryUser struct{ userRef, role string }

// registryUsers maps the "secret/key" of each password in the registry
// container's SCHEMA_REGISTRY_AUTH_USERS to its user; on is false when the
// variable is not set (auth off).
func registryUsers(env []corev1.EnvVar) (users map[string]registryUser, on bool) {
	users = map[string]registryUser{}
	for i, e := range env {
		if e.Name != "SCHEMA_REGISTRY_AUTH_USERS" {
			continue
		}
		on = true
		for _, u := range strings.Split(e.Value, ",") {
			parts := strings.Split(strings.TrimSpace(u), ":")
			if len(parts) < 3 {
				continue
			}
			ref := func(s string) string {
				if r := envRefs(s); len(r) == 1 && s == "$("+r[0]+")" {
					return secretRefOf(env[:i], r[0])
				}
				return ""
			}
			pass := ref(strings.Join(parts[1:len(parts)-1], ":"))
			if pass != "" {
				users[pass] = registryUser{userRef: ref(parts[0]), role: parts[len(parts)-1]}
			}
		}
	}
	return users, on
}

// containerPort resolves a port name or number against a pod's containers
// (0: no such port).
func containerPort(pod *corev1.PodSpec, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, c := range pod.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort)
			}
		}
	}
	return 0
}

// serviceTarget returns the container port of dep that the Service port
// named name (or numbered number) reaches, 0 when there is none.
func serviceTarget(svc *corev1.Service, dep *appsv1.Deployment, name string, number int32) int {
	for _, sp := range svc.Spec.Ports {
		if (name != "" && sp.Name == name) || (number != 0 && sp.Port == number) {
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			return containerPort(&dep.Spec.Template.Spec, tp)
		}
	}
	return 0
}

// selectDeployment returns the Deployment whose pods the labels select
// (nil when none or several do).
func selectDeployment(deps map[string]*appsv1.Deployment, sel map[string]string) *appsv1.Deployment {
	if len(sel) == 0 {
		return nil
	}
	var found *appsv1.Deployment
	for _, name := range sortedKeys(deps) {
		if labels.SelectorFromSet(sel).Matches(labels.Set(deps[name].Spec.Template.Labels)) {
			if found != nil {
				return nil
			}
			found = deps[name]
		}
	}
	return found
}

// served is what one Deployment listens on: its admin port (0 when the
// admin variable is unset) and its API ports (port -> variable).
type served struct {
	dep       *appsv1.Deployment
	component string
	adminVar  string
	admin     int
	api       map[int]string
	env       []corev1.EnvVar
	cm        map[string]string
}

// listening reads the listen addresses of a Deployment's first container
// from its ConfigMaps and literal env, falling back to the service's
// defaults.
func listening(d *appsv1.Deployment, configMaps map[string]*corev1.ConfigMap, envs map[string]envSpec) served {
	s := served{dep: d, component: d.Spec.Template.Labels["app.kubernetes.io/component"], api: map[int]string{}, cm: map[string]string{}}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return s
	}
	c := d.Spec.Template.Spec.Containers[0]
	s.env = c.Env
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range configMaps[ef.ConfigMapRef.Name].Data {
				s.cm[k] = v
			}
		}
	}
	value := func(name string) string {
		v, ok := s.cm[name]
		for _, e := range c.Env {
			if e.Name == name && e.ValueFrom == nil {
				v, ok = e.Value, true
			}
		}
		if !ok {
			v = envs[s.component].Vars[name]
		}
		return v
	}
	s.adminVar = adminVars[s.component]
	if v := value(s.adminVar); v != "" {
		s.admin, _ = portOf(v)
	}
	for _, name := range apiVars[s.component] {
		if p, ok := portOf(value(name)); ok && value(name) != "" {
			s.api[p] = name
		}
	}
	return s
}

// checkExposure checks, across the rendered objects, that /metrics and
// health are served on an admin port of their own that probes, Services and
// ServiceMonitors use and that no Ingress reaches; that NetworkPolicies
// never open an API port together with the admin port or beyond the
// release (except the gateway, the public entry point); and that the
// registry's users come from Secrets, each client holding the least role
// that works and no Secret value appearing in a ConfigMap or pod spec.
func checkExposure(docs []manifest, envs map[string]envSpec) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	deps := map[string]*appsv1.Deployment{}
	configMaps := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	svcs := map[string]*corev1.Service{}
	for _, d := range docs {
		switch o := d.Obj.(type) {
		case *appsv1.Deployment:
			deps[o.Name] = o
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = o
		case *corev1.Service:
			svcs[o.Name] = o
		}
	}
	info := map[string]served{}
	for _, name := range sortedKeys(deps) {
		s := listening(deps[name], configMaps, envs)
		info[name] = s
		what := "Deployment/" + name
		if s.adminVar == "" {
			continue
		}
		if s.admin == 0 {
			addf("%s: does not set %s: /metrics, /healthz and /readyz would be served on its API port", what, s.adminVar)
			continue
		}
		if v, ok := s.api[s.admin]; ok {
			addf("%s: %s and %s are both port %d: the API port would serve /metrics and health", what, s.adminVar, v, s.admin)
		}
		for _, c := range deps[name].Spec.Template.Spec.Containers {
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
			}{{"startup", c.StartupProbe}, {"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					continue
				}
				if n := containerPort(&deps[name].Spec.Template.Spec, p.probe.HTTPGet.Port); n != s.admin {
					addf("%s container %s: %s probe on port %s (%d), not the admin port %d (%s)", what, c.Name, p.kind, p.probe.HTTPGet.Port.String(), n, s.admin, s.adminVar)
				}
			}
		}
	}
	svcDep := map[string]*appsv1.Deployment{}
	for _, name := range sortedKeys(svcs) {
		svc := svcs[name]
		dep := selectDeployment(deps, svc.Spec.Selector)
		if dep == nil {
			continue // checkManifests reports it
		}
		svcDep[name] = dep
		admin := info[dep.Name].admin
		var api []string
		reachesAdmin := false
		for _, sp := range svc.Spec.Ports {
			n := serviceTarget(svc, dep, sp.Name, 0)
			if admin != 0 && (sp.Name == "metrics") != (n == admin) {
				addf("Service/%s: port %s reaches port %d of %s; only the port named metrics may reach its admin port %d", name, sp.Name, n, dep.Name, admin)
			}
			if n == admin && admin != 0 {
				reachesAdmin = true
			} else if info[dep.Name].api[n] != "" {
				api = append(api, sp.Name)
			}
		}
		// What publishes a Service (a LoadBalancer, an Ingress to it)
		// publishes all its ports.
		if reachesAdmin && len(api) > 0 {
			addf("Service/%s: carries API port(s) %v and the admin port %d: whatever publishes the API publishes /metrics too", name, api, admin)
		}
		if reachesAdmin && (svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort) {
			addf("Service/%s: type %s publishes the admin port %d outside the cluster", name, svc.Spec.Type, admin)
		}
	}
	for _, d := range docs {
		what := d.Kind + "/" + d.Name
		switch o := d.Obj.(type) {
		case *monitoringv1.ServiceMonitor:
			for _, n := range sortedKeys(svcs) {
				if !labels.SelectorFromSet(o.Spec.Selector.MatchLabels).Matches(labels.Set(svcs[n].Labels)) || svcDep[n] == nil {
					continue
				}
				dep := svcDep[n]
				for _, ep := range o.Spec.Endpoints {
					got, s := serviceTarget(svcs[n], dep, ep.Port, 0), info[dep.Name]
					switch {
					case s.adminVar != "" && s.admin == 0:
						addf("%s: endpoint port %q reaches port %d of %s, which has no admin port (%s is not set)", what, ep.Port, got, dep.Name, s.adminVar)
					case got != s.admin:
						addf("%s: endpoint port %q reaches port %d of %s, not its admin port %d: /metrics is served only there", what, ep.Port, got, dep.Name, s.admin)
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
					if b == nil || svcDep[b.Name] == nil {
						continue
					}
					dep := svcDep[b.Name]
					s := info[dep.Name]
					n := serviceTarget(svcs[b.Name], dep, b.Port.Name, b.Port.Number)
					switch {
					case s.adminVar != "" && s.admin == 0:
						addf("%s: routes %s to %s, whose API port also serves /metrics and health (%s is not set)", what, p.Path, dep.Name, s.adminVar)
					case n == s.admin:
						addf("%s: routes %s to port %d of %s, its admin port: the Ingress would publish /metrics", what, p.Path, n, dep.Name)
					case s.api[n] == "":
						addf("%s: routes %s to port %d of %s, which is not an API port", what, p.Path, n, dep.Name)
					}
				}
			}
		case *networkingv1.NetworkPolicy:
			dep := selectDeployment(deps, o.Spec.PodSelector.MatchLabels)
			if dep == nil {
				continue
			}
			problems = append(problems, checkPolicyRules(what, o, info[dep.Name])...)
		}
	}
	return append(problems, checkRegistryAuth(docs, info, svcDep, secrets)...)
}

// checkPolicyRules: every ingress rule names its ports; no rule opens the
// admin port together with an API port (whoever may scrape would reach the
// API, whoever may call the API would scrape); an API port other than the
// gateway's opens to this release's pods only.
func checkPolicyRules(what string, np *networkingv1.NetworkPolicy, s served) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	pod := &s.dep.Spec.Template.Spec
	release := map[string]string{}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance"} {
		release[k] = s.dep.Spec.Template.Labels[k]
	}
	releaseOnly := func(peers []networkingv1.NetworkPolicyPeer) bool {
		for _, p := range peers {
			if p.PodSelector == nil || p.NamespaceSelector != nil || p.IPBlock != nil || len(p.PodSelector.MatchExpressions) > 0 {
				return false
			}
			for k, v := range release {
				if p.PodSelector.MatchLabels[k] != v {
					return false
				}
			}
		}
		return len(peers) > 0
	}
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			addf("%s: ingress rule %d names no ports: it opens every port of %s", what, i, s.dep.Name)
			continue
		}
		var admin bool
		var api []string
		for _, p := range rule.Ports {
			if p.Port == nil {
				addf("%s: ingress rule %d has a port entry without a port: it opens every port", what, i)
				continue
			}
			n := containerPort(pod, *p.Port)
			switch {
			case n == s.admin && n != 0:
				admin = true
			case s.api[n] != "":
				api = append(api, p.Port.String())
			}
		}
		if admin && len(api) > 0 {
			addf("%s: ingress rule %d opens the admin port together with API port(s) %v", what, i, api)
		}
		if len(api) > 0 && s.component != "ingest-gateway" && !releaseOnly(rule.From) {
			addf("%s: ingress rule %d opens API port(s) %v of %s beyond this release's pods", what, i, api, s.dep.Name)
		}
	}
	return problems
}

// checkRegistryAuth: when the registry authenticates, every client that
// talks to it sends credentials from a Secret, of a user the registry
// knows, with the least role that works (ro for the sinks, rw for the helm
// test that registers a schema); every secretKeyRef names a key the
// rendered Secret has; no Secret value appears in a ConfigMap or a pod spec.
func checkRegistryAuth(docs []manifest, info map[string]served, svcDep map[string]*appsv1.Deployment, secrets map[string]*corev1.Secret) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var users map[string]registryUser
	on := false
	registryHosts := map[string]bool{}
	for _, name := range sortedKeys(info) {
		if info[name].component == "schema-registry" {
			users, on = registryUsers(info[name].env)
			for svc, dep := range svcDep {
				if dep.Name == name {
					registryHosts[svc] = true
				}
			}
		}
	}
	// client checks one registry client's credentials; needRW for writers.
	client := func(what, registryURL string, env []corev1.EnvVar, needRW bool) {
		u, err := url.Parse(registryURL)
		if !on || err != nil || !registryHosts[u.Hostname()] {
			return // auth off, or another registry
		}
		pass, user := secretRefOf(env, "REGISTRY_PASSWORD"), secretRefOf(env, "REGISTRY_USERNAME")
		if pass == "" || user == "" {
			addf("%s: registry auth is on but it sends no REGISTRY_USERNAME/REGISTRY_PASSWORD from a Secret", what)
			return
		}
		ru, ok := users[pass]
		switch {
		case !ok:
			addf("%s: REGISTRY_PASSWORD comes from %s, no user of the registry's SCHEMA_REGISTRY_AUTH_USERS", what, pass)
		case ru.userRef != user:
			addf("%s: REGISTRY_USERNAME comes from %s but the user with that password is %s", what, user, ru.userRef)
		case needRW && ru.role != "rw":
			addf("%s: registers schemas but holds the registry's %s user; it needs rw", what, ru.role)
		case !needRW && ru.role != "ro" && info[strings.TrimPrefix(what, "Deployment/")].component != "ingest-gateway":
			addf("%s: holds the registry's %s user but only reads schemas; give it the ro user", what, ru.role)
		}
	}
	secretValues := map[string]string{} // value -> "secret key"
	for _, name := range sortedKeys(secrets) {
		for k, v := range secrets[name].Data {
			if len(v) >= 8 {
				secretValues[string(v)] = name + " key " + k
			}
		}
	}
	leaks := func(what, text string) {
		for v, where := range secretValues {
			if strings.Contains(text, v) {
				addf("%s: holds the value of Secret %s", what, where)
			}
		}
	}
	refs := func(what string, pod *corev1.PodSpec) {
		for _, c := range pod.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					r := e.ValueFrom.SecretKeyRef
					if s, ok := secrets[r.Name]; ok {
						if _, has := s.Data[r.Key]; !has {
							addf("%s: env %s reads key %s of Secret %s, which has no such key", what, e.Name, r.Key, r.Name)
						}
					}
				}
				leaks(what+" env "+e.Name, e.Value)
			}
			leaks(what+" command", strings.Join(append(slices.Clone(c.Command), c.Args...), " "))
		}
	}
	for _, d := range docs {
		what := d.Kind + "/" + d.Name
		switch o := d.Obj.(type) {
		case *appsv1.Deployment:
			refs(what, &o.Spec.Template.Spec)
			s := info[o.Name]
			if v, ok := s.cm["REGISTRY_URL"]; ok {
				client(what, v, s.env, false)
			}
		case *corev1.Pod:
			refs(what, &o.Spec)
			var env []corev1.EnvVar
			registry := ""
			for _, c := range o.Spec.Containers {
				for _, e := range c.Env {
					if e.Name == "REGISTRY" {
						registry = e.Value
					}
				}
				env = append(env, c.Env...)
			}
			if registry != "" {
				client(what, registry, env, true)
			}
		case *corev1.ConfigMap:
			for _, k := range sortedKeys(o.Data) {
				leaks(what+" key "+k, o.Data[k])
			}
		}
	}
	return problems
}

// checkSecureDefaults holds the chart's defaults to issue 13's deployment
// defaults: every Deployment behind a NetworkPolicy, the registry
// authenticating, and the gateway holding its read-only user.
func checkSecureDefaults(docs []manifest) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var deps []*appsv1.Deployment
	var policies []*networkingv1.NetworkPolicy
	for _, d := range docs {
		switch o := d.Obj.(type) {
		case *appsv1.Deployment:
			deps = append(deps, o)
		case *networkingv1.NetworkPolicy:
			policies = append(policies, o)
		}
	}
	var users map[string]registryUser
	on := false
	for _, d := range deps {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "schema-registry" && len(d.Spec.Template.Spec.Containers) > 0 {
			if users, on = registryUsers(d.Spec.Template.Spec.Containers[0].Env); !on {
				addf("Deployment/%s: registry auth is off (no SCHEMA_REGISTRY_AUTH_USERS)", d.Name)
			}
		}
	}
	for _, d := range deps {
		if !slices.ContainsFunc(policies, func(np *networkingv1.NetworkPolicy) bool {
			return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) &&
				labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels))
		}) {
			addf("Deployment/%s: selected by no NetworkPolicy", d.Name)
		}
		if on && d.Spec.Template.Labels["app.kubernetes.io/component"] == "ingest-gateway" {
			if u, ok := users[secretRefOf(d.Spec.Template.Spec.Containers[0].Env, "REGISTRY_PASSWORD")]; !ok || u.role != "ro" {
				addf("Deployment/%s: the gateway does not hold the registry's ro user by default (%+v)", d.Name, u)
			}
		}
	}
	return problems
}
