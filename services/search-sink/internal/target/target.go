// Package target decides where a record goes in the search cluster: the
// index or data stream and the template name, derived injectively from the
// topic name, and in key mode the document id and external version derived
// from the record key, offset and timestamp.
package target

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

// Elasticsearch limits on names.
const (
	MaxIndexBytes = 255 // index, data stream and template names
	MaxIDBytes    = 512 // document _id
	// backingOverhead is what a data stream's backing index adds to the
	// stream's name: ".ds-" + name + "-yyyy.MM.dd-000001".
	backingOverhead = len(".ds-") + len("-2006.01.02-000001")
	hashChars       = 8
)

// TemplatePrefix starts every composable template the sink installs.
const TemplatePrefix = "sluice-"

// plainSegment reports whether s can be an index-name segment as it is:
// lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter
// or digit. Such topics keep the index names they always had.
func plainSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// hashTopic is the short hash a changed segment ends with.
func hashTopic(topic string) string {
	h := sha256.Sum256([]byte(topic))
	return hex.EncodeToString(h[:])[:hashChars]
}

// Segment returns the part of index names that stands for topic, at most
// maxLen bytes. A plain topic (lowercase letters, digits, '.', '_', '-',
// not starting with a symbol) short enough is used as it is. Any other
// topic becomes its lowercased form with every other byte replaced by '_'
// and leading symbols removed, cut to fit, followed by '+' and the first 8
// hex digits of the SHA-256 of the original name: "Orders" ->
// "orders+<hash>", "-orders" -> "orders+<hash>" (a different hash). A plain
// segment never contains '+', so a changed name never equals a plain one,
// and two changed names are equal only if both their cleaned forms and
// their hashes are: Namer refuses that case instead of merging topics.
func Segment(topic string, maxLen int) string {
	return segment(topic, maxLen, hashTopic)
}

func segment(topic string, maxLen int, hash func(string) string) string {
	if plainSegment(topic) && len(topic) <= maxLen {
		return topic
	}
	b := make([]byte, 0, len(topic))
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-':
		default:
			c = '_'
		}
		if len(b) == 0 && !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			continue // index names must not start with '_', '-', '+' or '.'
		}
		b = append(b, c)
	}
	keep := maxLen - 1 - hashChars
	if keep < 0 {
		keep = 0
	}
	if len(b) > keep {
		b = b[:keep]
	}
	h := hash(topic)
	if len(b) == 0 {
		return "t+" + h // still starts with a letter
	}
	return string(b) + "+" + h
}

// CollisionError says two topics would share an index or template.
type CollisionError struct {
	Topic, Other, Name string
}

func (e *CollisionError) Error() string {
	if e.Other == "" {
		return fmt.Sprintf("topic %q would write to %q, a name the sink reserves for itself", e.Topic, e.Name)
	}
	return fmt.Sprintf("topic %q and topic %q both map to the index name segment %q; refusing to merge them", e.Topic, e.Other, e.Name)
}

// IsCollision reports whether err is a *CollisionError.
func IsCollision(err error) bool {
	var ce *CollisionError
	return errors.As(err, &ce)
}

// Namer maps topics to index, data stream and template names through
// Segment, and refuses (CollisionError) a topic whose names would be those
// of another topic seen by this process or a reserved name (the alerts
// index). Safe for concurrent use.
type Namer struct {
	n        *document.Namer
	maxSeg   int
	reserved []string
	hash     func(string) string

	mu    sync.RWMutex
	seg   map[string]string // topic -> segment
	owner map[string]string // segment -> topic
}

// NewNamer wraps n (which renders the date parts of the pattern). reserved
// lists index names no topic may write to.
func NewNamer(n *document.Namer, reserved ...string) *Namer {
	// What the pattern adds around the topic: render it for an empty topic.
	overhead := len(n.Name("", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)))
	maxSeg := MaxIndexBytes - overhead
	if n.Mode() == document.ModeDataStream {
		maxSeg -= backingOverhead
	}
	if t := MaxIndexBytes - len(TemplatePrefix); maxSeg > t {
		maxSeg = t
	}
	if maxSeg < 1+hashChars+1 {
		maxSeg = 1 + hashChars + 1 // a pattern this long leaves no room; ES will say so
	}
	return &Namer{n: n, maxSeg: maxSeg, reserved: reserved, hash: hashTopic, seg: map[string]string{}, owner: map[string]string{}}
}

// Mode returns the index mode.
func (n *Namer) Mode() document.IndexMode { return n.n.Mode() }

// Segment returns topic's segment, or a *CollisionError.
func (n *Namer) Segment(topic string) (string, error) {
	n.mu.RLock()
	s, ok := n.seg[topic]
	n.mu.RUnlock()
	if ok {
		return s, nil // the per-record path
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.seg[topic]; ok {
		return s, nil
	}
	s = segment(topic, n.maxSeg, n.hash)
	if other, taken := n.owner[s]; taken && other != topic {
		return "", &CollisionError{Topic: topic, Other: other, Name: s}
	}
	pattern := n.n.Pattern(s) // the segment is already clean: Pattern keeps it
	for _, r := range n.reserved {
		if r != "" && glob(pattern, r) {
			return "", &CollisionError{Topic: topic, Name: r}
		}
	}
	n.seg[topic] = s
	n.owner[s] = topic
	return s, nil
}

// Forget releases a topic's names (the topic was deleted).
func (n *Namer) Forget(topic string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.seg[topic]; ok {
		delete(n.owner, s)
		delete(n.seg, topic)
	}
}

// Index returns the index or data stream for a record of topic at t.
func (n *Namer) Index(topic string, t time.Time) (string, error) {
	s, err := n.Segment(topic)
	if err != nil {
		return "", err
	}
	return n.n.Name(s, t), nil
}

// Pattern returns the index pattern of topic's template.
func (n *Namer) Pattern(topic string) (string, error) {
	s, err := n.Segment(topic)
	if err != nil {
		return "", err
	}
	return n.n.Pattern(s), nil
}

// Template returns the name of topic's composable template.
func (n *Namer) Template(topic string) (string, error) {
	s, err := n.Segment(topic)
	if err != nil {
		return "", err
	}
	return TemplatePrefix + s, nil
}

// glob matches an index pattern where only '*' is special.
func glob(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, p)
		}
		at := strings.Index(name, p)
		if at < 0 {
			return false
		}
		name = name[at+len(p):]
	}
	return true
}

// Prefixes of key ids that are not the key itself.
const (
	IDBase64Prefix = "b64:"
	IDHashPrefix   = "sha256:"
)

// KeyID renders a record key as a document id, injectively: a key that is
// printable UTF-8 (no control characters), at most 512 bytes and not
// starting with "b64:" or "sha256:" is its own id; any other key is
// "b64:" + unpadded base64url of its bytes when that fits in 512 bytes,
// else "sha256:" + the hex SHA-256 of its bytes.
func KeyID(k []byte) string {
	if plainKey(k) {
		return string(k)
	}
	if len(IDBase64Prefix)+base64.RawURLEncoding.EncodedLen(len(k)) <= MaxIDBytes {
		return IDBase64Prefix + base64.RawURLEncoding.EncodeToString(k)
	}
	h := sha256.Sum256(k)
	return IDHashPrefix + hex.EncodeToString(h[:])
}

func plainKey(k []byte) bool {
	if len(k) == 0 || len(k) > MaxIDBytes || !utf8.Valid(k) {
		return false
	}
	s := string(k)
	if strings.HasPrefix(s, IDBase64Prefix) || strings.HasPrefix(s, IDHashPrefix) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return false
		}
	}
	return true
}

// Version bits: the record time in milliseconds above, the offset below.
const (
	versionOffsetBits = 20
	versionTimeBits   = 63 - versionOffsetBits
)

// Version is the external version of a record in key mode. Newer means a
// later record timestamp (milliseconds since 1970, clamped to [0, 2^43),
// i.e. until the year 2248); records of the same millisecond are ordered
// by offset modulo 2^20. Unlike the offset alone, this orders updates of a
// key that moved to another partition (repartitioning, a producer choosing
// partitions): offsets of different partitions are unrelated numbers.
func Version(t time.Time, offset int64) int64 {
	ms := int64(0)
	if !t.IsZero() {
		ms = t.UnixMilli()
	}
	if ms < 0 {
		ms = 0
	}
	if ms >= 1<<versionTimeBits {
		ms = 1<<versionTimeBits - 1
	}
	return ms<<versionOffsetBits | (offset & (1<<versionOffsetBits - 1))
}
