package kafka

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		topic string
		want  string // substring of the error; "" = valid
	}{
		{"plain", "orders", ""},
		{"all classes", "Orders.v1_eu-west-2", ""},
		{"longest source topic", strings.Repeat("a", 245), ""},
		{"empty", "", "empty"},
		{"dot", ".", `"." is not allowed`},
		{"dot dot", "..", `".." is not allowed`},
		{"three dots are a name", "...", ""},
		{"no room for .dlq", strings.Repeat("a", 246), "246 bytes, more than 245"},
		{"kafka's max is still too long", strings.Repeat("a", 249), "more than 245"},
		{"slash", "orders/x", `byte 6 ('/')`},
		{"space", "a b", `byte 1 (' ')`},
		{"unicode", "ordérs", `byte 3`},
		{"nul", "a\x00", `byte 1 ('\x00')`},
		{"newline in long name quoted short", strings.Repeat("x", 100) + "\n", `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...: byte 100`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateTopicName(c.topic)
			if c.want == "" {
				if err != nil || !ValidTopicName(c.topic) {
					t.Fatalf("ValidateTopicName(%q) = %v, ValidTopicName = %v; want valid", c.topic, err, ValidTopicName(c.topic))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidTopicName) {
				t.Fatalf("ValidateTopicName(%q) = %v, want ErrInvalidTopicName containing %q", c.topic, err, c.want)
			}
			if ValidTopicName(c.topic) {
				t.Fatalf("ValidTopicName(%q) = true", c.topic)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error is %d bytes: it must not echo a long name", len(err.Error()))
			}
		})
	}
}

func TestMatchTopic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, pattern, topic string
		want                 bool
	}{
		{"exact", "orders", "orders", true},
		{"exact other", "orders", "payments", false},
		{"star", "*", "orders", true},
		{"prefix glob", "orders.*", "orders.eu", true},
		{"star never internal", "*", "_schemas", false},
		{"star never consumer offsets", "*", "__consumer_offsets", false},
		{"star never alerts", "*", "_sluice-alerts", false},
		{"alerts glob never alerts", "*alerts*", "_sluice-alerts", false},
		{"alerts glob matches data topic", "*alerts*", "fraud-alerts", true},
		{"star never dlq", "*", "orders.dlq", false},
		{"prefix glob never dlq", "orders.*", "orders.dlq", false},
		{"dlq glob never dlq", "*.dlq", "orders.dlq", false},
		{"question mark never dlq", "orders.dl?", "orders.dlq", false},
		{"class never dlq", "orders.[d]lq", "orders.dlq", false},
		{"explicit dlq", "orders.dlq", "orders.dlq", true},
		{"explicit internal", "_sluice-alerts", "_sluice-alerts", true},
		{"nested dlq", "orders.*", "orders.eu.dlq", false},
		{"dlq-like but not suffix", "orders.*", "orders.dlqx", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MatchTopic(c.pattern, c.topic); got != c.want {
				t.Fatalf("MatchTopic(%q, %q) = %v, want %v", c.pattern, c.topic, got, c.want)
			}
			if got := MatchAnyTopic([]string{"nothing", c.pattern}, c.topic); got != c.want {
				t.Fatalf("MatchAnyTopic = %v, want %v", got, c.want)
			}
		})
	}
}

// FuzzValidateTopicName checks the validator against its definition.
func FuzzValidateTopicName(f *testing.F) {
	for _, s := range []string{"", ".", "..", "orders", "a/b", strings.Repeat("a", 245), strings.Repeat("a", 246), "ö"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && s != "." && s != ".." && len(s) <= 245
		for _, r := range []byte(s) {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				want = false
			}
		}
		err := ValidateTopicName(s)
		if (err == nil) != want || ValidTopicName(s) != want {
			t.Fatalf("ValidateTopicName(%q) = %v, ValidTopicName = %v, want valid=%v", s, err, ValidTopicName(s), want)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
		if want && len(s+".dlq") > MaxTopicNameLength {
			t.Fatalf("dead-letter topic of valid %q is longer than Kafka allows", s)
		}
	})
}
