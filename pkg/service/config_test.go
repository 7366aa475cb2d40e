package service

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

type nested struct {
	Brokers []string `env:"T_BROKERS" default:"a:1,b:2"`
}

func (n *nested) Validate() error {
	if len(n.Brokers) == 0 {
		return Invalid("T_BROKERS", "at least one broker is required")
	}
	return nil
}

type testConfig struct {
	Opts    Options
	Nested  nested
	Name    string        `env:"T_NAME" default:"x"`
	Count   int           `env:"T_COUNT" default:"3"`
	Ratio   float64       `env:"T_RATIO" default:"0.5"`
	Wait    time.Duration `env:"T_WAIT" default:"1s"`
	On      bool          `env:"T_ON"`
	Secret  string        `env:"T_SECRET" secret:"true"`
	private int
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigPrecedence(t *testing.T) {
	t.Parallel()
	var c testConfig
	err := LoadConfig(&c, []string{"-t-count", "9", "-log-level", "debug"}, env(map[string]string{"T_COUNT": "5", "T_NAME": "fromenv", "T_BROKERS": "k:9092", "T_ON": "true"}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if c.Count != 9 || c.Name != "fromenv" || c.Ratio != 0.5 || c.Wait != time.Second || !c.On || c.Opts.LogLevel != "debug" {
		t.Fatalf("config = %+v", c)
	}
	if len(c.Nested.Brokers) != 1 || c.Nested.Brokers[0] != "k:9092" {
		t.Fatalf("brokers = %v", c.Nested.Brokers)
	}
	if c.Opts.ShutdownTimeout != 30*time.Second {
		t.Fatalf("default shutdown timeout = %s", c.Opts.ShutdownTimeout)
	}
}

func TestLoadConfigErrorsNameVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		wantVar string
		notIn   string
	}{
		{"bad int", map[string]string{"T_COUNT": "many"}, nil, "T_COUNT", ""},
		{"bad duration", map[string]string{"T_WAIT": "soon"}, nil, "T_WAIT", ""},
		{"bad bool", map[string]string{"T_ON": "perhaps"}, nil, "T_ON", ""},
		{"bad level", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL", ""},
		{"negative timeout", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, nil, "SHUTDOWN_TIMEOUT", ""},
		{"nested validate", map[string]string{"T_BROKERS": " , "}, nil, "T_BROKERS", ""},
		{"bad flag value", nil, []string{"-t-ratio", "x"}, "T_RATIO", ""},
		{"unknown flag", nil, []string{"-nope"}, "flags", ""},
		{"secret not echoed", map[string]string{"T_SECRET": "hunter2", "T_COUNT": "x"}, nil, "T_COUNT", "hunter2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c testConfig
			err := LoadConfig(&c, tc.args, env(tc.env))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConfigError", err)
			}
			if ce.Var != tc.wantVar || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("err names %q (%v), want %q", ce.Var, err, tc.wantVar)
			}
			if tc.notIn != "" && strings.Contains(err.Error(), tc.notIn) {
				t.Fatalf("err %q leaks %q", err, tc.notIn)
			}
			if ExitCode(err) != 2 {
				t.Fatalf("ExitCode = %d, want 2", ExitCode(err))
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 || ExitCode(flag.ErrHelp) != 0 {
		t.Fatal("exit codes wrong")
	}
}

func TestSecretRedactedInUsage(t *testing.T) {
	t.Parallel()
	u := Usage(&testConfig{})
	for _, want := range []string{"T_SECRET", "-t-secret", "LOG_LEVEL", "T_BROKERS"} {
		if !strings.Contains(u, want) {
			t.Fatalf("usage lacks %s:\n%s", want, u)
		}
	}
}

func TestCheckConfigFlag(t *testing.T) {
	t.Parallel()
	type cfg struct {
		Brokers []string `env:"X_BROKERS"`
	}
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	var c cfg
	if err := LoadConfig(&c, []string{"-check-config"}, env(nil)); !errors.Is(err, ErrConfigChecked) || ExitCode(err) != 0 {
		t.Fatalf("valid config with -check-config: err = %v (exit %d), want ErrConfigChecked (exit 0)", err, ExitCode(err))
	}
	if err := LoadConfig(&c, nil, env(nil)); err != nil {
		t.Fatalf("valid config without -check-config: %v", err)
	}
}
