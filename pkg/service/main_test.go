package service

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/version"
)

func TestPreRun(t *testing.T) {
	t.Parallel()
	subs := []Subcommand{{Usage: "bucket apply", Help: "apply the policy"}}
	cases := []struct {
		name     string
		args     []string
		done     bool
		contains []string
	}{
		{"version", []string{"-version"}, true, []string{"svc version " + version.Version, "revision "}},
		{"double-dash version after flags", []string{"-log-level", "debug", "--version"}, true, []string{"svc version"}},
		{"help lists subcommands and flags", []string{"-h"}, false, []string{"Usage:", "svc bucket apply", "apply the policy", "-version", "-check-config"}},
		{"help after flags", []string{"-log-level", "info", "--help"}, false, []string{"svc bucket apply"}},
		{"subcommand's own help", []string{"bucket", "-h"}, false, nil},
		{"serve", nil, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			code, done := preRun(&out, "svc", tc.args, subs)
			if done != tc.done || code != 0 {
				t.Fatalf("preRun(%q) = %d, %v; want 0, %v", tc.args, code, done, tc.done)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output %q lacks %q", out.String(), want)
				}
			}
			if tc.contains == nil && out.Len() != 0 {
				t.Errorf("unexpected output %q", out.String())
			}
		})
	}
}

// TestHelpColumnsAligned: in -h output the help text of every row of a
// block starts at one offset, however long the subcommand, flag, variable
// or default is.
func TestHelpColumnsAligned(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	preRun(&out, "svc", []string{"-h"}, []Subcommand{{Usage: "bucket apply [-dry-run] [-a-much-longer-option]", Help: "apply the policy"}})
	type cfg struct {
		Short string `env:"A" default:"1" help:"short one"`
		Long  string `env:"A_VERY_LONG_VARIABLE_NAME_INDEED_LONGER_THAN_THIRTY_SIX" default:"http://127.0.0.1:8081/with/a/long/path" help:"long one"`
	}
	blocks := map[string][]string{
		"usage":  {"serve (configuration", "apply the policy"},
		"flags":  {"print the version", "validate the configuration", "this help"},
		"config": {"short one", "long one"},
	}
	text := map[string]string{"usage": out.String(), "flags": out.String(), "config": Usage(&cfg{})}
	for name, helps := range blocks {
		at := map[int][]string{}
		for _, line := range strings.Split(text[name], "\n") {
			for _, h := range helps {
				if i := strings.Index(line, h); i >= 0 {
					at[i] = append(at[i], line)
				}
			}
		}
		if len(at) != 1 {
			t.Errorf("%s: help text starts at %d different offsets: %v", name, len(at), at)
		}
	}
}
