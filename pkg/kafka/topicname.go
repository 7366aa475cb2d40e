package kafka

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/sluicehq/sluice/pkg/deadletter"
)

// MaxTopicNameLength is Kafka's limit on a topic name's length.
const MaxTopicNameLength = 249

// MaxSourceTopicLength is the longest name a topic that takes producer data
// may have: its dead-letter topic (<topic>.dlq) must be a legal name too.
const MaxSourceTopicLength = MaxTopicNameLength - len(deadletter.Suffix)

// ErrInvalidTopicName is wrapped by ValidateTopicName's errors.
var ErrInvalidTopicName = errors.New("invalid topic name")

// ValidateTopicName checks a producer-chosen topic name before it is stored
// anywhere (maps, caches, metric labels): Kafka's charset [a-zA-Z0-9._-],
// not "." or "..", and at most MaxSourceTopicLength bytes so that its
// dead-letter topic is valid as well. The error quotes at most the first
// 64 bytes of name.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidTopicName, name)
	case len(name) > MaxSourceTopicLength:
		return fmt.Errorf("%w: %d bytes, more than %d (Kafka's %d minus the %q dead-letter suffix)",
			ErrInvalidTopicName, len(name), MaxSourceTopicLength, MaxTopicNameLength, deadletter.Suffix)
	}
	for i := 0; i < len(name); i++ {
		if !topicChar[name[i]] {
			return fmt.Errorf("%w: %s: byte %d (%q) is not one of [a-zA-Z0-9._-]", ErrInvalidTopicName, quoteShort(name), i, name[i])
		}
	}
	return nil
}

// ValidTopicName reports whether ValidateTopicName accepts name.
func ValidTopicName(name string) bool {
	if name == "" || len(name) > MaxSourceTopicLength || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !topicChar[name[i]] {
			return false
		}
	}
	return true
}

var topicChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['.'], t['_'], t['-'] = true, true, true
	return t
}()

func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// IsGlob reports whether a topic pattern has a path.Match wildcard.
func IsGlob(pattern string) bool { return strings.ContainsAny(pattern, `*?[\`) }

// MatchTopic reports whether topic matches pattern: an exact name, or a
// path.Match glob. A glob ("*", "orders.*", "*alerts*", ...) never matches
// an internal topic (leading "_": _schemas, _sluice-alerts,
// __consumer_offsets) or a dead-letter topic (<topic>.dlq): only an explicit
// name grants those, so no wildcard grant lets a producer forge dead
// letters, alerts or registry records.
func MatchTopic(pattern, topic string) bool {
	if pattern == topic {
		return true
	}
	if !IsGlob(pattern) || IsInternal(topic) || deadletter.Is(topic) {
		return false
	}
	ok, _ := path.Match(pattern, topic)
	return ok
}

// MatchAnyTopic reports whether topic matches one of patterns (MatchTopic).
func MatchAnyTopic(patterns []string, topic string) bool {
	for _, p := range patterns {
		if MatchTopic(p, topic) {
			return true
		}
	}
	return false
}
