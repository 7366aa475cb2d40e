package checks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestHelmTestHookScript runs the rendered test hook's script with /bin/sh
// and curl against stand-ins for the registry and the gateway on 127.0.0.1
// that check each request's method, path, content type, body and
// credentials, and answer as the real services do: the script passes on an
// accepted record and fails (exit 1) on a rejected one, a refused schema or
// refused registry credentials; the registry's credentials go to the
// registry alone.
func TestHelmTestHookScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	pod := findDoc[*corev1.Pod](t, renderDefaults(t), "test-produce")
	c := pod.Spec.Containers[0]
	if len(c.Command) != 2 || c.Command[0] != "/bin/sh" || len(c.Args) != 1 {
		t.Fatalf("unexpected hook command %q args %d", c.Command, len(c.Args))
	}
	script := c.Args[0]
	topic := ""
	for _, e := range c.Env {
		if e.Name == "TOPIC" {
			topic = e.Value
		}
	}
	// The admin user's password as a Secret may hold it: any byte but a
	// comma (the registry's list separator) survives the script's encoding.
	const user, pass = "admin", `p@ss:w"rd\$(HOME) 'ü'`
	// The gateway's API key for the test topic, when it wants one.
	const apiKey = "sk_helm-test.0123456789"
	accepted := `{"results":[{"partition":0,"offset":41,"timestamp":1}]}`
	cases := []struct {
		name       string
		regStatus  int
		gwStatus   int
		gwBody     string
		wantOK     bool
		wantOutput string
		unavail    int32  // first answers 503 with Retry-After, as while Kafka is down
		noAuth     bool   // registry auth off: no credentials given or expected
		regPass    string // the password the registry expects, when not pass
		gwKey      string // the API key the gateway expects ("": none)
		sendKey    string // the API key given to the script
	}{
		{name: "accepted", regStatus: 200, gwStatus: 200, gwBody: accepted, wantOK: true, wantOutput: "record accepted"},
		{name: "accepted, registry auth off", regStatus: 200, gwStatus: 200, gwBody: accepted, wantOK: true, wantOutput: "record accepted", noAuth: true},
		{name: "registry refuses the credentials", regStatus: 200, gwStatus: 200, gwBody: `{}`, wantOutput: "registering the schema failed (401)", regPass: "rotated"},
		{name: "accepted with a gateway API key", regStatus: 200, gwStatus: 200, gwBody: accepted, wantOK: true, wantOutput: "record accepted", gwKey: apiKey, sendKey: apiKey},
		{name: "gateway refuses the API key", regStatus: 200, gwStatus: 401, gwBody: `{"error_code":40101,"message":"missing or invalid API key"}`, wantOutput: "gateway rejected the record", gwKey: apiKey, sendKey: "revoked"},
		{name: "gateway wants an API key, none given", regStatus: 200, gwStatus: 401, gwBody: `{"error_code":40101,"message":"missing or invalid API key"}`, wantOutput: "gateway rejected the record", gwKey: apiKey},
		{name: "rejected record", regStatus: 200, gwStatus: 422, gwBody: `{"results":[{"error_code":42201,"message":"value.msg: expected string","field":"value.msg"}]}`, wantOutput: "42201"},
		{name: "accepted without an offset", regStatus: 200, gwStatus: 202, gwBody: `{"results":[{}]}`, wantOutput: "no offset"},
		{name: "per-record error in a 207", regStatus: 200, gwStatus: 207, gwBody: `{"results":[{"error_code":42201,"message":"bad"}]}`, wantOutput: "gateway rejected the record"},
		{name: "registry refuses the schema", regStatus: 409, gwStatus: 200, gwBody: `{}`, wantOutput: "registering the schema failed"},
		{name: "gateway unavailable, then accepts", regStatus: 200, gwStatus: 200, gwBody: `{"results":[{"partition":0,"offset":7,"timestamp":1}]}`, wantOK: true, wantOutput: "record accepted", unavail: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var produced atomic.Int32
			wantAuth := ""
			if !tc.noAuth {
				p := pass
				if tc.regPass != "" {
					p = tc.regPass
				}
				wantAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+p))
			}
			reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); strings.HasPrefix(got, "Bearer ") {
					t.Errorf("the registry got the gateway's API key: %q", got)
				}
				if got := r.Header.Get("Authorization"); got != wantAuth {
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = w.Write([]byte(`{"error_code":40101,"message":"unauthorized"}`))
					return
				}
				var body struct {
					Schema string `json:"schema"`
				}
				var schema map[string]any
				if r.Method != http.MethodPost || r.URL.Path != "/subjects/"+topic+"-value/versions" ||
					r.Header.Get("Content-Type") != "application/vnd.schemaregistry.v1+json" ||
					json.NewDecoder(r.Body).Decode(&body) != nil || json.Unmarshal([]byte(body.Schema), &schema) != nil || schema["type"] != "record" {
					t.Errorf("bad register request %s %s", r.Method, r.URL.Path)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				w.WriteHeader(tc.regStatus)
				_, _ = w.Write([]byte(`{"id":1}`))
			}))
			defer reg.Close()
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a := r.Header.Get("Authorization")
				if strings.HasPrefix(a, "Basic ") {
					t.Errorf("the gateway got the registry's credentials: %q", a)
				}
				if want := map[bool]string{true: "Bearer " + tc.gwKey}[tc.gwKey != ""]; a != want {
					produced.Add(1)
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = w.Write([]byte(`{"error_code":40101,"message":"missing or invalid API key"}`))
					return
				}
				var body struct {
					Records []struct {
						Value map[string]any `json:"value"`
					} `json:"records"`
				}
				if r.Method != http.MethodPost || r.URL.Path != "/v1/topics/"+topic+"/records" ||
					!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
					json.NewDecoder(r.Body).Decode(&body) != nil || len(body.Records) != 1 || body.Records[0].Value["msg"] == nil {
					t.Errorf("bad produce request %s %s", r.Method, r.URL.Path)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				if produced.Add(1) <= tc.unavail {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"error_code":50301,"message":"kafka unavailable"}`))
					return
				}
				w.WriteHeader(tc.gwStatus)
				_, _ = w.Write([]byte(tc.gwBody))
			}))
			defer gw.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tmp := t.TempDir()
			// The pod writes its files to /tmp (an emptyDir); here to a temp dir.
			cmd := exec.CommandContext(ctx, "/bin/sh", "-ec", strings.ReplaceAll(script, "/tmp/", tmp+"/"))
			cmd.Env = []string{"PATH=" + pathEnv(), "REGISTRY=" + reg.URL, "GATEWAY=" + gw.URL, "TOPIC=" + topic, "RETRY_DELAY=0"}
			if !tc.noAuth {
				cmd.Env = append(cmd.Env, "REGISTRY_USERNAME="+user, "REGISTRY_PASSWORD="+pass)
			}
			if tc.sendKey != "" {
				cmd.Env = append(cmd.Env, "GATEWAY_API_KEY="+tc.sendKey)
			}
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.wantOK {
				t.Fatalf("script err=%v, want ok=%v\n%s", err, tc.wantOK, out)
			}
			if !strings.Contains(string(out), tc.wantOutput) {
				t.Errorf("output lacks %q:\n%s", tc.wantOutput, out)
			}
			if strings.Contains(string(out), pass) || strings.Contains(string(out), apiKey) {
				t.Errorf("the script printed a secret:\n%s", out)
			}
			if want := 1 + tc.unavail; tc.regStatus == 200 && tc.regPass == "" && produced.Load() != want {
				t.Errorf("gateway got %d produce requests, want %d (a rejection must not be retried)", produced.Load(), want)
			}
		})
	}
}

func pathEnv() string {
	if p, err := exec.LookPath("curl"); err == nil {
		return p[:strings.LastIndex(p, "/")] + ":/usr/bin:/bin"
	}
	return "/usr/bin:/bin"
}

// TestKibanaInitScript runs the compose stack's kibana-init command with
// /bin/sh and curl against a stand-in Kibana on 127.0.0.1, which requires
// Kibana's import API shape (POST, kbn-xsrf, multipart "file" holding
// NDJSON saved objects) for every file of deployments/kibana.
func TestKibanaInitScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	p, err := loadCompose(t, composeFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := p.Services["kibana-init"]
	if len(svc.Entrypoint) != 2 || svc.Entrypoint[0] != "/bin/sh" || len(svc.Command) != 1 {
		t.Fatalf("unexpected kibana-init entrypoint %q command %q", svc.Entrypoint, svc.Command)
	}
	var mount string
	for _, v := range svc.Volumes {
		if v.Target == "/kibana" {
			mount = v.Source
		}
	}
	if mount == "" {
		t.Fatal("kibana-init does not mount the saved objects at /kibana")
	}
	var imported atomic.Int32
	kibana := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/saved_objects/_import" || r.URL.Query().Get("overwrite") != "true" || r.Header.Get("kbn-xsrf") == "" {
			t.Errorf("bad import request %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			t.Errorf("no multipart file: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		defer f.Close()
		dec := json.NewDecoder(f)
		n := 0
		for dec.More() {
			var obj struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}
			if err := dec.Decode(&obj); err != nil {
				t.Errorf("saved objects are not NDJSON: %v", err)
				break
			}
			n++
		}
		imported.Add(1)
		_, _ = w.Write([]byte(`{"success":true,"successCount":` + strconv.Itoa(n) + `}`))
	}))
	defer kibana.Close()
	script := strings.ReplaceAll(svc.Command[0], "http://kibana:5601", kibana.URL)
	script = strings.ReplaceAll(script, "/kibana/", mount+"/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-ec", script)
	cmd.Env = []string{"PATH=" + pathEnv()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kibana-init: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(mount, "*.ndjson"))
	if len(files) == 0 || int(imported.Load()) != len(files) {
		t.Fatalf("imported %d files, deployments/kibana has %d\n%s", imported.Load(), len(files), out)
	}
}
