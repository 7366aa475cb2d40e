package proctest

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	bin := Build(t, "pkg/testkit/proctest/testdata/readyserver")
	if again := Build(t, "pkg/testkit/proctest/testdata/readyserver"); again != bin {
		t.Fatalf("second Build = %s, want cached %s", again, bin)
	}
	port := FreePort(t)
	url := PortURL(port, "/readyz")
	p := Start(t, Spec{Name: "readyserver", Bin: bin, Env: map[string]string{"PORT": strconv.Itoa(port), "GREETING": "hi"}, ReadyURL: url})
	get := func() string {
		resp, err := http.Get(url)
		if err != nil {
			return "down"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "hi" {
		t.Fatalf("GET = %q, want the env-provided greeting", got)
	}
	p.Kill()
	if p.Running() || get() != "down" {
		t.Fatal("process still serving after Kill")
	}
	p.Restart(t)
	if got := get(); got != "hi" {
		t.Fatalf("after restart GET = %q", got)
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
}
