// Package auth checks gateway API keys: secrets stored as SHA-256 hashes in
// a JSON file (a mounted Kubernetes secret), each key allowed a list of
// topic patterns, presented as Bearer tokens or Basic credentials (HTTP) or
// the same "authorization" value in gRPC metadata.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// Key is one API key as stored in the keys file.
type Key struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"` // hex SHA-256 of the secret
	// Topics are exact names or path.Match globs; a glob ("*", "orders.*")
	// never matches an internal topic (leading "_") or a dead-letter topic
	// (<topic>.dlq): only an explicit name grants those.
	Topics []string `json:"topics"`
	// RecordsPerSecond limits the key's average rate; 0 means unlimited.
	RecordsPerSecond float64 `json:"records_per_second,omitempty"`

	hash    [32]byte
	limiter *limiter
}

// limiter is a token bucket that may go into debt: a request is admitted
// whenever the bucket is positive, so batches larger than one second's
// worth are possible while the average rate holds.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (l *limiter) refill(now time.Time) {
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
}

// Allow takes n records if the key has budget now.
func (k *Key) Allow(n int) bool {
	l := k.limiter
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(time.Now())
	if l.tokens <= 0 {
		return false
	}
	l.tokens -= float64(n)
	return true
}

// Wait takes n records, waiting for budget (streams: backpressure instead
// of errors).
func (k *Key) Wait(ctx context.Context, n int) error {
	l := k.limiter
	if l == nil {
		return nil
	}
	for {
		l.mu.Lock()
		l.refill(time.Now())
		if l.tokens > 0 {
			l.tokens -= float64(n)
			l.mu.Unlock()
			return nil
		}
		wait := time.Duration((-l.tokens + 1) / l.rate * float64(time.Second))
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RateLimit returns the key's limit in records per second (0: none).
func (k *Key) RateLimit() float64 { return k.RecordsPerSecond }

// AllowsTopic reports whether the key may produce to topic.
func (k *Key) AllowsTopic(topic string) bool {
	return kafka.MatchAnyTopic(k.Topics, topic)
}

// File is the keys file format: {"keys":[{"id":..,"sha256":..,"topics":[..]}]}.
type File struct {
	Keys []Key `json:"keys"`
}

// HashSecret returns the hex SHA-256 of a secret, for writing keys files.
// API keys are long random strings, so a fast hash is enough; the file
// never holds a usable secret.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

type keySet struct {
	byHash map[[32]byte]*Key
	byID   map[string]*Key
	raw    []byte
}

// Keys is a reloadable set of API keys; a nil *Keys means authentication is off.
type Keys struct {
	path string
	set  atomic.Pointer[keySet]
	gen  atomic.Uint64 // bumped by every reload that changed the set
}

// Generation changes whenever a reload replaced the keys; long-lived
// streams compare it to know when to authenticate again.
func (k *Keys) Generation() uint64 { return k.gen.Load() }

// Load reads the keys file.
func Load(file string) (*Keys, error) {
	k := &Keys{path: file}
	if _, err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func parse(b []byte) (*keySet, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parsing API keys: %w", err)
	}
	s := &keySet{byHash: map[[32]byte]*Key{}, byID: map[string]*Key{}, raw: b}
	for i := range f.Keys {
		k := &f.Keys[i]
		if k.ID == "" {
			return nil, fmt.Errorf("API key %d has no id", i)
		}
		h, err := hex.DecodeString(k.SHA256)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("API key %s: sha256 must be 64 hex digits", k.ID)
		}
		copy(k.hash[:], h)
		if k.RecordsPerSecond < 0 {
			return nil, fmt.Errorf("API key %s: records_per_second must not be negative", k.ID)
		}
		if k.RecordsPerSecond > 0 {
			k.limiter = &limiter{rate: k.RecordsPerSecond, tokens: k.RecordsPerSecond, last: time.Now()}
		}
		for _, p := range k.Topics {
			if _, err := path.Match(p, "x"); err != nil {
				return nil, fmt.Errorf("API key %s: bad topic pattern %q", k.ID, p)
			}
		}
		if _, dup := s.byID[k.ID]; dup {
			return nil, fmt.Errorf("API key id %s appears twice", k.ID)
		}
		s.byID[k.ID] = k
		s.byHash[k.hash] = k
	}
	return s, nil
}

func (k *Keys) reload() (bool, error) {
	b, err := os.ReadFile(k.path)
	if err != nil {
		return false, fmt.Errorf("reading API keys file: %w", err)
	}
	if cur := k.set.Load(); cur != nil && string(cur.raw) == string(b) {
		return false, nil
	}
	s, err := parse(b)
	if err != nil {
		return false, err
	}
	if cur := k.set.Load(); cur != nil {
		// A reload keeps a key's rate-limit state: rewriting the file must
		// not hand every key a full bucket.
		for id, nk := range s.byID {
			if ok := cur.byID[id]; ok != nil && ok.limiter != nil && nk.limiter != nil && ok.RecordsPerSecond == nk.RecordsPerSecond {
				nk.limiter = ok.limiter
			}
		}
	}
	k.set.Store(s)
	k.gen.Add(1)
	return true, nil
}

// Watch reloads the file every interval until ctx ends; a broken file keeps
// the previous keys and is logged.
func (k *Keys) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			changed, err := k.reload()
			if err != nil {
				log.Error("API keys not reloaded; keeping the previous set", "err", err)
			} else if changed {
				log.Info("API keys reloaded", "keys", len(k.set.Load().byID))
			}
		}
	}
}

// Errors Authenticate returns.
var (
	ErrMissing = errors.New("missing API key: send Authorization: Bearer <key> or Basic <id:key>")
	ErrInvalid = errors.New("invalid API key")
)

// ErrRevoked ends a stream whose key was removed or replaced in the keys
// file while the stream was open.
var ErrRevoked = errors.New("API key revoked: it is no longer in the API keys file")

// Session is one credential's authentication held by a long-lived stream:
// Key re-authenticates it whenever the keys file was reloaded, so a
// revoked key stops being accepted within one reload interval.
type Session struct {
	keys   *Keys
	header string
	gen    uint64
	key    *Key
}

// Session authenticates header for a stream.
func (k *Keys) Session(header string) (*Session, error) {
	gen := k.Generation()
	key, err := k.Authenticate(header)
	if err != nil {
		return nil, err
	}
	return &Session{keys: k, header: header, gen: gen, key: key}, nil
}

// Key returns the session's key as of the current keys file (a reload
// makes a new *Key, with the file's new topics and limits); ErrRevoked
// when the credential no longer authenticates.
func (s *Session) Key() (*Key, error) {
	if gen := s.keys.Generation(); gen != s.gen {
		key, err := s.keys.Authenticate(s.header)
		if err != nil {
			return nil, ErrRevoked
		}
		s.key, s.gen = key, gen
	}
	return s.key, nil
}

// Authenticate checks an Authorization header value.
func (k *Keys) Authenticate(authorization string) (*Key, error) {
	s := k.set.Load()
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || cred == "" {
		return nil, ErrMissing
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		h := sha256.Sum256([]byte(strings.TrimSpace(cred)))
		if key, ok := s.byHash[h]; ok {
			return key, nil
		}
		return nil, ErrInvalid
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil, ErrInvalid
		}
		id, secret, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, ErrInvalid
		}
		key, found := s.byID[id]
		h := sha256.Sum256([]byte(secret))
		if !found {
			return nil, ErrInvalid
		}
		if subtle.ConstantTimeCompare(h[:], key.hash[:]) != 1 {
			return nil, ErrInvalid
		}
		return key, nil
	}
	return nil, ErrMissing
}
