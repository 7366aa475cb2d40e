package config

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/pkg/service"
)

// kafka_exporter flags and the variable each one sets.
var valueFlags = map[string]string{
	"topic.filter":                 "EXPORTER_TOPIC_FILTER",
	"topic.exclude":                "EXPORTER_TOPIC_EXCLUDE",
	"group.filter":                 "EXPORTER_GROUP_FILTER",
	"group.exclude":                "EXPORTER_GROUP_EXCLUDE",
	"web.listen-address":           "EXPORTER_ADMIN_ADDR",
	"web.telemetry-path":           "EXPORTER_TELEMETRY_PATH",
	"topic.workers":                "EXPORTER_CONCURRENCY",
	"sasl.username":                "KAFKA_SASL_USERNAME",
	"sasl.password":                "KAFKA_SASL_PASSWORD",
	"tls.ca-file":                  "KAFKA_TLS_CA_FILE",
	"tls.cert-file":                "KAFKA_TLS_CERT_FILE",
	"tls.key-file":                 "KAFKA_TLS_KEY_FILE",
	"tls.server-name":              "KAFKA_TLS_SERVER_NAME",
	"tls.enabled":                  "KAFKA_TLS_ENABLED",
	"tls.insecure-skip-tls-verify": "KAFKA_TLS_INSECURE_SKIP_VERIFY",
}

// boolFlags may be given without a value (kingpin style, --no-x for false).
var boolFlags = map[string]bool{
	"tls.enabled": true, "tls.insecure-skip-tls-verify": true, "sasl.enabled": true,
	"sasl.handshake": true, "offset.show-all": true, "concurrent.enable": true, "log.enable-sarama": true,
}

// ignoredFlags are accepted for drop-in compatibility and have no effect:
// the exporter negotiates versions, refreshes metadata every collection and
// never collects on the scrape path.
var ignoredFlags = map[string]bool{
	"kafka.version": true, "refresh.metadata": true, "concurrent.enable": true, "verbosity": true,
	"log.enable-sarama": true, "sasl.handshake": true,
}

// TranslateFlags rewrites danielqsj/kafka_exporter's flags (--kafka.server
// repeatable, --topic.filter, --sasl.*, --tls.*, --web.*) into the flags
// service.LoadConfig understands; other arguments pass through unchanged.
// It returns the kafka_exporter flags that were accepted but ignored.
func TranslateFlags(args []string) (out, ignored []string, err error) {
	var brokers []string
	saslEnabled, saslMech := false, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, ".") {
			out = append(out, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		neg := false
		if n, ok := strings.CutPrefix(name, "no-"); ok && boolFlags[n] {
			name, neg = n, true
		}
		known := name == "kafka.server" || name == "sasl.mechanism" || name == "sasl.enabled" ||
			name == "offset.show-all" || valueFlags[name] != "" || ignoredFlags[name]
		if !known {
			out = append(out, a)
			continue
		}
		if !hasVal {
			switch {
			case neg:
				val = "false"
			case boolFlags[name]:
				val = "true"
			case i+1 < len(args):
				i++
				val = args[i]
			default:
				return nil, nil, &service.ConfigError{Var: "flags", Msg: fmt.Sprintf("flag --%s needs a value", name)}
			}
		} else if neg {
			return nil, nil, &service.ConfigError{Var: "flags", Msg: fmt.Sprintf("flag --no-%s takes no value", name)}
		}
		switch name {
		case "kafka.server":
			brokers = append(brokers, val)
		case "sasl.enabled":
			saslEnabled = val == "true"
		case "sasl.mechanism":
			saslMech = val
		case "offset.show-all":
			if val != "true" {
				return nil, nil, &service.ConfigError{Var: "flags", Msg: "--offset.show-all=false is not supported: every partition of a consumed topic is reported, as with kafka_exporter's default"}
			}
		default:
			if v := valueFlags[name]; v != "" {
				out = append(out, "-"+flagName(v)+"="+val)
			} else {
				ignored = append(ignored, "--"+name)
			}
		}
	}
	if len(brokers) > 0 {
		out = append(out, "-kafka-brokers="+strings.Join(brokers, ","))
	}
	if saslEnabled || saslMech != "" {
		mech, err := saslMechanism(saslMech)
		if err != nil {
			return nil, nil, err
		}
		if saslEnabled {
			out = append(out, "-kafka-sasl-mechanism="+mech)
		}
	}
	return out, ignored, nil
}

// saslMechanism maps kafka_exporter's mechanism names to ours.
func saslMechanism(m string) (string, error) {
	switch strings.ToLower(m) {
	case "", "plain":
		return "PLAIN", nil
	case "scram-sha256", "scram-sha-256":
		return "SCRAM-SHA-256", nil
	case "scram-sha512", "scram-sha-512":
		return "SCRAM-SHA-512", nil
	}
	return "", service.Invalid("KAFKA_SASL_MECHANISM", "--sasl.mechanism %q is not supported (want plain, scram-sha256 or scram-sha512)", m)
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }
