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
