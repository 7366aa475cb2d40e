package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeKeys(t *testing.T, p string, f File) {
	t.Helper()
	b, _ := json.Marshal(f)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeKeys(t, p, File{Keys: []Key{
		{ID: "a", SHA256: HashSecret("secret-a"), Topics: []string{"orders", "logs.*"}},
		{ID: "b", SHA256: HashSecret("secret-b"), Topics: []string{"*"}},
	}})
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	basic := func(u, pw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+pw)) }
	cases := []struct {
		name, header string
		id           string
		err          error
	}{
		{"bearer", "Bearer secret-a", "a", nil},
		{"bearer lower", "bearer secret-b", "b", nil},
		{"basic", basic("a", "secret-a"), "a", nil},
		{"basic wrong secret", basic("a", "secret-b"), "", ErrInvalid},
		{"basic unknown id", basic("z", "secret-a"), "", ErrInvalid},
		{"bad bearer", "Bearer nope", "", ErrInvalid},
		{"missing", "", "", ErrMissing},
		{"other scheme", "Digest x", "", ErrMissing},
		{"basic not base64", "Basic ***", "", ErrInvalid},
	}
	for _, tc := range cases {
		key, err := k.Authenticate(tc.header)
		if !errors.Is(err, tc.err) || (err == nil && key.ID != tc.id) {
			t.Errorf("%s: key %v err %v", tc.name, key, err)
		}
	}
	a, _ := k.Authenticate("Bearer secret-a")
	b, _ := k.Authenticate("Bearer secret-b")
	for topic, want := range map[string]bool{"orders": true, "logs.app": true, "logs": false, "payments": false, "logs.dlq": false, "logs.app.dlq": false} {
		if a.AllowsTopic(topic) != want {
			t.Errorf("a allows %s = %v", topic, !want)
		}
	}
	if !b.AllowsTopic("anything") || b.AllowsTopic("_schemas") || b.AllowsTopic("_sluice-alerts") || b.AllowsTopic("orders.dlq") {
		t.Error("'*' must allow normal topics and never internal or dead-letter ones")
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":  `{`,
		"no id":     `{"keys":[{"sha256":"` + HashSecret("x") + `"}]}`,
		"bad hash":  `{"keys":[{"id":"a","sha256":"xyz"}]}`,
		"duplicate": `{"keys":[{"id":"a","sha256":"` + HashSecret("x") + `"},{"id":"a","sha256":"` + HashSecret("y") + `"}]}`,
		"pattern":   `{"keys":[{"id":"a","sha256":"` + HashSecret("x") + `","topics":["["]}]}`,
	} {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(content), 0o600)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWatchReloads(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeKeys(t, p, File{Keys: []Key{{ID: "a", SHA256: HashSecret("one"), Topics: []string{"*"}}}})
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = k.Watch(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	writeKeys(t, p, File{Keys: []Key{{ID: "a", SHA256: HashSecret("two"), Topics: []string{"*"}}}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := k.Authenticate("Bearer two"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated key never accepted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := k.Authenticate("Bearer one"); err == nil {
		t.Fatal("old key still accepted after rotation")
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeKeys(t, p, File{Keys: []Key{{ID: "a", SHA256: HashSecret("x"), Topics: []string{"*"}, RecordsPerSecond: 100}}})
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := k.Authenticate("Bearer x")
	start := time.Now()
	if !key.Allow(150) {
		t.Fatal("a full bucket must admit one batch, even a large one")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := key.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// 50 records of debt at 100/s: about half a second after the batch.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("Wait returned %s after the batch, before the debt was repaid", d)
	}
	deep := &Key{ID: "d", limiter: &limiter{rate: 1, tokens: 1, last: time.Now()}}
	if !deep.Allow(100000) || deep.Allow(1) {
		t.Fatal("a bucket in debt must refuse")
	}
	unlimited := &Key{ID: "u"}
	if !unlimited.Allow(1 << 20) {
		t.Fatal("a key without a limit refused")
	}
}

func TestSessionSeesRevocation(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeKeys(t, p, File{Keys: []Key{
		{ID: "a", SHA256: HashSecret("one"), Topics: []string{"orders"}},
		{ID: "b", SHA256: HashSecret("two"), Topics: []string{"*"}},
	}})
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Session("Bearer nope"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("session with a bad key: %v", err)
	}
	sa, err := k.Session("Bearer one")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := k.Session("Bearer two")
	steps := []struct {
		name     string
		file     []Key
		aErr     error
		aTopic   string
		aAllowed bool
		bStillOK bool
	}{
		{name: "unchanged", aTopic: "orders", aAllowed: true, bStillOK: true},
		{name: "topics narrowed", file: []Key{{ID: "a", SHA256: HashSecret("one"), Topics: []string{"payments"}}, {ID: "b", SHA256: HashSecret("two"), Topics: []string{"*"}}},
			aTopic: "orders", aAllowed: false, bStillOK: true},
		{name: "revoked", file: []Key{{ID: "b", SHA256: HashSecret("two"), Topics: []string{"*"}}}, aErr: ErrRevoked, bStillOK: true},
	}
	for _, st := range steps {
		if st.file != nil {
			writeKeys(t, p, File{Keys: st.file})
			if changed, err := k.reload(); !changed || err != nil {
				t.Fatalf("%s: reload = %v, %v", st.name, changed, err)
			}
		}
		key, err := sa.Key()
		if !errors.Is(err, st.aErr) {
			t.Fatalf("%s: Key() err = %v, want %v", st.name, err, st.aErr)
		}
		if err == nil && key.AllowsTopic(st.aTopic) != st.aAllowed {
			t.Fatalf("%s: AllowsTopic(%s) = %v", st.name, st.aTopic, !st.aAllowed)
		}
		if _, err := sb.Key(); (err == nil) != st.bStillOK {
			t.Fatalf("%s: other key: %v", st.name, err)
		}
	}
}

func TestReloadKeepsRateLimitState(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeKeys(t, p, File{Keys: []Key{{ID: "a", SHA256: HashSecret("x"), Topics: []string{"*"}, RecordsPerSecond: 1}}})
	k, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := k.Authenticate("Bearer x")
	if !key.Allow(1000) {
		t.Fatal("full bucket refused")
	}
	writeKeys(t, p, File{Keys: []Key{{ID: "a", SHA256: HashSecret("x"), Topics: []string{"orders"}, RecordsPerSecond: 1}}})
	if changed, err := k.reload(); !changed || err != nil {
		t.Fatal(changed, err)
	}
	key, _ = k.Authenticate("Bearer x")
	if key.Allow(1) {
		t.Fatal("a reload refilled the bucket of a key in debt")
	}
}
