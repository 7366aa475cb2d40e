// Package objkey builds object keys every S3 store and common tool accepts,
// whatever producers put in the values they are derived from: one
// escaping rule, a length limit per key and per path segment, and a
// deterministic, collision-free shortening (cut + hash) for what is longer.
//
// The rule, as documented in the README:
//
//   - A value becomes one path segment: bytes A-Z a-z 0-9 '.' '_' '-' stay,
//     every other byte (including '/', '%', '+', '!', control characters,
//     and each byte of non-ASCII or invalid UTF-8) becomes %XX with
//     uppercase hex (Hive's partition-value escape, decoded by Hive,
//     Spark and Athena). The empty value is "__empty__" (and the value
//     "__empty__" is "%5F_empty__"); "." and ".." are "%2E" and "%2E%2E".
//   - A segment longer than the segment limit (and a path too long for the
//     key limit) is shortened to its longest prefix that does not split a
//     %XX escape, followed by Marker ('!') and the first 32 hex digits of
//     the SHA-256 of the whole segment. Escaping never produces '!' and
//     topic names cannot contain it, so a shortened segment never equals
//     an unshortened one, and two different long segments differ in their
//     hash.
//   - The file name "<topic>+<partition>+<offset>.avro" shortens the topic
//     part the same way when the name would exceed the segment limit less
//     FileNameReserve, so the "+<partition>+<offset>.avro" suffix always
//     survives.
package objkey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// S3MaxKeyBytes is S3's limit on the UTF-8 length of a key.
const S3MaxKeyBytes = 1024

// NameMax is the longest file name most Linux file systems allow
// (NAME_MAX); stores that keep objects as files (versitygw's posix
// backend, MinIO in FS mode) refuse a key with a longer path segment.
const NameMax = 255

// Marker separates a shortened segment's kept prefix from its hash.
const Marker = "!"

// hashLen is how many hex digits of the SHA-256 a shortened segment keeps
// (128 bits: collisions need ~2^64 attempts).
const hashLen = 32

// FileNameReserve is how much shorter than the segment limit a file name
// (the key's last segment) is kept: stores that keep objects as files
// overwrite one through a temporary name beside it (versitygw's posix
// backend links ".<name>.sgwtmp.<nanoseconds>", 28 bytes longer, then
// renames it), and a replay overwrites objects.
const FileNameReserve = 28

// MinSegmentBytes is the smallest segment limit accepted: a file name
// with a shortened topic part (marker, hash, "+<partition>+<offset>.avro")
// plus FileNameReserve must fit.
const MinSegmentBytes = 100

// OffsetWidth is how many digits the start offset in a file name has.
const OffsetWidth = 20

// fileSuffixMax is the longest "+<partition>+<offset>.avro": a partition
// number has at most 10 digits (int32).
const fileSuffixMax = 1 + 10 + 1 + OffsetWidth + len(".avro")

// EmptyValue is the segment an empty value becomes.
const EmptyValue = "__empty__"

// Limits are the key and segment limits, in bytes.
type Limits struct {
	MaxKey     int
	MaxSegment int
}

// Validate checks the limits are usable.
func (l Limits) Validate() error {
	if l.MaxKey < 256 || l.MaxKey > S3MaxKeyBytes {
		return fmt.Errorf("key limit %d outside [256, %d]", l.MaxKey, S3MaxKeyBytes)
	}
	if l.MaxSegment < MinSegmentBytes || l.MaxSegment > l.MaxKey {
		return fmt.Errorf("segment limit %d outside [%d, key limit %d]", l.MaxSegment, MinSegmentBytes, l.MaxKey)
	}
	return nil
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Escape turns a value into one path segment (see the package comment).
func Escape(v string) string {
	switch v {
	case "":
		return EmptyValue
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	case EmptyValue:
		return "%5F" + EmptyValue[1:] // so that no value shares the empty one's segment
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if !plain(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hexd = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if plain(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexd[c>>4], hexd[c&15])
	}
	return string(b)
}

// Fit returns seg unchanged if it has at most max bytes, else its longest
// prefix that leaves room for Marker and the hash without splitting a %XX
// escape, then Marker and 32 hex digits of SHA-256(seg). With max below
// len(Marker)+32 the result is those 33 bytes (callers never ask for less).
func Fit(seg string, max int) string {
	if len(seg) <= max {
		return seg
	}
	sum := sha256.Sum256([]byte(seg))
	keep := max - len(Marker) - hashLen
	if keep < 0 {
		keep = 0
	}
	// Do not split "%XX": back up to the '%' if it is in the last two bytes.
	for i := keep - 1; i >= 0 && i >= keep-2; i-- {
		if seg[i] == '%' {
			keep = i
			break
		}
	}
	return seg[:keep] + Marker + hex.EncodeToString(sum[:])[:hashLen]
}

// Shortened reports whether a key or segment had something shortened.
func Shortened(s string) bool { return strings.Contains(s, Marker) }

// ValidTopic reports why a topic name cannot be used in keys: Kafka's own
// rule (1 to 249 of A-Z a-z 0-9 . _ -, not "." or ".."), which also keeps
// '+' and '!' out of it. Brokers enforce it; the sink checks anyway.
func ValidTopic(topic string) error {
	if topic == "" || len(topic) > 249 || topic == "." || topic == ".." {
		return fmt.Errorf("topic name %q: want 1 to 249 characters, not \".\" or \"..\"", topic)
	}
	for i := 0; i < len(topic); i++ {
		if !plain(topic[i]) {
			return fmt.Errorf("topic name %q: byte %#x is not one of A-Z a-z 0-9 . _ -", topic, topic[i])
		}
	}
	return nil
}

// ValidLiteral reports why operator-chosen key text (the prefix, a time
// path format's literals) is unsafe: it may use A-Z a-z 0-9 . _ - = and
// '/' between segments, each segment non-empty, not "." or "..", and at
// most maxSegment bytes.
func ValidLiteral(s string, maxSegment int) error {
	if s == "" {
		return nil
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !plain(c) && c != '=' && c != '/' {
			return fmt.Errorf("byte %q at %d is not one of A-Z a-z 0-9 . _ - = /", c, i)
		}
	}
	for _, seg := range strings.Split(s, "/") {
		switch {
		case seg == "":
			return errors.New("empty segment (leading, trailing or doubled '/')")
		case seg == "." || seg == "..":
			return fmt.Errorf("segment %q", seg)
		case len(seg) > maxSegment:
			return fmt.Errorf("segment of %d bytes exceeds the %d-byte segment limit", len(seg), maxSegment)
		}
	}
	return nil
}

// ErrKeyTooLong is returned when a topic's fixed key parts leave no room
// for a path: a per-topic condition (prefix, topic name and limits), never
// a property of one record.
var ErrKeyTooLong = errors.New("object key too long")

// Layout builds keys under one prefix within the limits.
type Layout struct {
	prefix string
	lim    Limits
}

// NewLayout checks the prefix and limits.
func NewLayout(prefix string, lim Limits) (*Layout, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if err := ValidLiteral(prefix, lim.MaxSegment); err != nil {
		return nil, fmt.Errorf("prefix %q: %w", prefix, err)
	}
	if len(prefix) > lim.MaxKey/4 {
		return nil, fmt.Errorf("prefix of %d bytes exceeds a quarter of the %d-byte key limit", len(prefix), lim.MaxKey)
	}
	return &Layout{prefix: prefix, lim: lim}, nil
}

// Limits returns the layout's limits.
func (l *Layout) Limits() Limits { return l.lim }

// TopicKeys builds the keys of one topic.
type TopicKeys struct {
	dir       string // "<prefix>/<topic segment>/"
	fileTopic string // topic part of file names
	budget    int    // bytes left for the path
	maxSeg    int
}

// minPath is the smallest path budget a topic must leave: a shortened
// single segment (marker, hash and a few bytes) or "partition=<n>".
const minPath = len(Marker) + hashLen + 8

// Topic returns the key builder of a topic, or an error when the topic's
// name is unusable or its fixed key parts leave less than a minimal path.
func (l *Layout) Topic(topic string) (*TopicKeys, error) {
	if err := ValidTopic(topic); err != nil {
		return nil, err
	}
	dir := Fit(topic, l.lim.MaxSegment) + "/"
	if l.prefix != "" {
		dir = l.prefix + "/" + dir
	}
	ft := topic
	if room := l.lim.MaxSegment - FileNameReserve - fileSuffixMax; len(ft) > room {
		ft = Fit(topic, room)
	}
	t := &TopicKeys{dir: dir, fileTopic: ft, maxSeg: l.lim.MaxSegment}
	t.budget = l.lim.MaxKey - len(dir) - 1 - len(ft) - fileSuffixMax
	if t.budget < minPath {
		return nil, fmt.Errorf("%w: prefix %q and topic %q leave %d bytes for the path under a %d-byte key limit (need %d)",
			ErrKeyTooLong, l.prefix, topic, t.budget, l.lim.MaxKey, minPath)
	}
	return t, nil
}

// PathBudget is how many bytes the path of this topic's keys may have.
func (t *TopicKeys) PathBudget() int { return t.budget }

// Key builds "<prefix>/<topic>/<path>/<topic>+<partition>+<offset>.avro".
// Every path segment is shortened to the segment limit; a one-segment
// path (the field partitioner's) is shortened further to the path budget.
// A longer multi-segment path is ErrKeyTooLong (a time path format too
// long for this topic: a configuration problem, not a record's).
func (t *TopicKeys) Key(path string, partition int, offset int64) (string, error) {
	if strings.Contains(path, "/") {
		segs := strings.Split(path, "/")
		changed := false
		for i, s := range segs {
			if len(s) > t.maxSeg {
				segs[i], changed = Fit(s, t.maxSeg), true
			}
		}
		if changed {
			path = strings.Join(segs, "/")
		}
		if len(path) > t.budget {
			return "", fmt.Errorf("%w: path of %d bytes, %d left for it", ErrKeyTooLong, len(path), t.budget)
		}
	} else {
		path = Fit(path, min(t.maxSeg, t.budget))
	}
	var b strings.Builder
	b.Grow(len(t.dir) + len(path) + 1 + len(t.fileTopic) + fileSuffixMax)
	b.WriteString(t.dir)
	b.WriteString(path)
	b.WriteByte('/')
	b.WriteString(t.fileTopic)
	b.WriteByte('+')
	b.WriteString(strconv.Itoa(partition))
	b.WriteByte('+')
	off := strconv.FormatInt(offset, 10)
	for range OffsetWidth - len(off) {
		b.WriteByte('0')
	}
	b.WriteString(off)
	b.WriteString(".avro")
	return b.String(), nil
}
