package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// TestAuthenticatedConnections runs the admin client's own TLS and SASL
// handshakes against kfake, with good and bad credentials.
func TestAuthenticatedConnections(t *testing.T) {
	t.Parallel()
	pki := kafkatest.NewPKI(t)
	cases := []struct {
		name string
		opts []kfake.Opt
		mech string
		tls  bool
	}{
		{"plain", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "s3cret")}, "PLAIN", false},
		{"scram-sha-256", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "alice", "s3cret")}, "SCRAM-SHA-256", false},
		{"scram-sha-512 over tls", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "alice", "s3cret"), kfake.TLS(pki.ServerTLS())}, "SCRAM-SHA-512", true},
		{"tls", []kfake.Opt{kfake.TLS(pki.ServerTLS())}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := kafkatest.Start(t, append(tc.opts, kfake.SeedTopics(2, "t"))...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := c.Config()
			cfg.SASLMechanism, cfg.SASLUsername, cfg.SASLPassword = tc.mech, "alice", "s3cret"
			if tc.tls {
				cfg.TLSEnabled, cfg.TLSCAFile = true, pki.CAFile
			}
			cl, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			md, err := cl.Metadata(ctx)
			if err != nil {
				t.Fatalf("metadata: %v", err)
			}
			if len(md.Brokers) != 1 || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 {
				t.Fatalf("metadata = %+v", md)
			}
			offs, err := cl.ListOffsets(ctx, md.Brokers[0].Addr(), map[string][]int32{"t": {0, 1}}, Latest)
			if err != nil || len(offs) != 2 {
				t.Fatalf("list offsets = %v, %v", offs, err)
			}
			bad := cfg
			if tc.mech != "" {
				bad.SASLPassword = "wrong"
			} else {
				bad.TLSCAFile = "" // system roots do not trust the test CA
			}
			bcl, err := New(bad, Options{RequestTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer bcl.Close()
			_, err = bcl.Metadata(ctx)
			want := "SASL"
			if tc.mech == "" {
				want = "certificate"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("metadata with bad credentials: %v, want an error mentioning %s", err, want)
			}
		})
	}
}
