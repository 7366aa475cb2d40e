package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/service"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestKafkaExporterFlags(t *testing.T) {
	t.Parallel()
	cfg, ignored, err := Load([]string{
		"--kafka.server=a:9092", "--kafka.server", "b:9092",
		"--topic.filter", "^orders", "--topic.exclude=^__", "--group.filter=^g", "--group.exclude", "^tmp",
		"--web.listen-address=:9400", "--web.telemetry-path", "/m",
		"--sasl.enabled", "--sasl.mechanism=scram-sha512", "--sasl.username", "u", "--sasl.password=p",
		"--tls.insecure-skip-tls-verify", "--tls.enabled",
		"--kafka.version=2.8.0", "--offset.show-all", "--topic.workers=16",
	}, lookup(nil))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !reflect.DeepEqual(cfg.Kafka.Brokers, []string{"a:9092", "b:9092"}) {
		t.Errorf("brokers = %v", cfg.Kafka.Brokers)
	}
	checks := map[string][2]string{
		"topic filter":  {cfg.TopicFilter, "^orders"},
		"topic exclude": {cfg.TopicExclude, "^__"},
		"group filter":  {cfg.GroupFilter, "^g"},
		"group exclude": {cfg.GroupExclude, "^tmp"},
		"listen":        {cfg.AdminAddr, ":9400"},
		"path":          {cfg.TelemetryPath, "/m"},
		"mechanism":     {cfg.Kafka.SASLMechanism, "SCRAM-SHA-512"},
		"user":          {cfg.Kafka.SASLUsername, "u"},
		"password":      {cfg.Kafka.SASLPassword, "p"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if !cfg.Kafka.TLSEnabled || !cfg.Kafka.TLSInsecureSkipVerify || cfg.Concurrency != 16 {
		t.Errorf("tls=%v skip=%v concurrency=%d", cfg.Kafka.TLSEnabled, cfg.Kafka.TLSInsecureSkipVerify, cfg.Concurrency)
	}
	if !reflect.DeepEqual(ignored, []string{"--kafka.version"}) {
		t.Errorf("ignored = %v", ignored)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(nil, lookup(map[string]string{"KAFKA_BROKERS": "k:9092"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminAddr != ":9308" || cfg.TelemetryPath != "/metrics" || cfg.TopicFilter != ".*" || cfg.GroupExclude != "^$" {
		t.Fatalf("defaults = %+v", cfg)
	}
	if cfg.Kafka.SASLMechanism != "" {
		t.Fatalf("mechanism = %q without --sasl.enabled", cfg.Kafka.SASLMechanism)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad topic regex", []string{"--topic.filter=("}, nil, "EXPORTER_TOPIC_FILTER"},
		{"bad group exclude env", nil, map[string]string{"EXPORTER_GROUP_EXCLUDE": "[a"}, "EXPORTER_GROUP_EXCLUDE"},
		{"bad path", []string{"--web.telemetry-path=metrics"}, nil, "EXPORTER_TELEMETRY_PATH"},
		{"bad mechanism", []string{"--sasl.enabled", "--sasl.mechanism=gssapi"}, nil, "KAFKA_SASL_MECHANISM"},
		{"sasl without user", []string{"--sasl.enabled"}, nil, "KAFKA_SASL_USERNAME"},
		{"missing value", []string{"--kafka.server"}, nil, "flags"},
		{"show-all false", []string{"--no-offset.show-all"}, nil, "offset.show-all"},
		{"interval", nil, map[string]string{"EXPORTER_INTERVAL": "1ms"}, "EXPORTER_INTERVAL"},
		{"concurrency", []string{"--topic.workers=0"}, nil, "EXPORTER_CONCURRENCY"},
		{"unknown flag", []string{"--kafka.labels=x=y"}, nil, "flags"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"KAFKA_BROKERS": "k:9092"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, _, err := Load(tc.args, lookup(env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
			if service.ExitCode(err) != 2 {
				t.Fatalf("exit code %d, want 2", service.ExitCode(err))
			}
		})
	}
}

func FuzzTranslateFlags(f *testing.F) {
	f.Add("--kafka.server=a:1 --topic.filter x --sasl.enabled --no-tls.enabled -log-level=info")
	f.Add("--kafka.server")
	f.Add("--no-offset.show-all=true --web.listen-address")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		out, _, err := TranslateFlags(args)
		if err != nil {
			return
		}
		for _, a := range out {
			if strings.HasPrefix(a, "--") && strings.Contains(a, ".") {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if valueFlags[name] != "" || name == "kafka.server" {
					t.Fatalf("kafka_exporter flag %q passed through untranslated", a)
				}
			}
		}
	})
}
