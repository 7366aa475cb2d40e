// Package limits holds the bounds the sink puts on what producers can make
// it do in the search cluster: the window of record times it accepts and
// the number of new indices a topic may create per hour.
package limits

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Refusal kinds (metric label values and dead-letter reason prefixes).
const (
	NoTimestamp = "no_timestamp"
	TooOld      = "too_old"
	TooNew      = "too_new"
)

// TimeWindow accepts record times within [now-MaxAge, now+MaxSkew]. A zero
// MaxAge or MaxSkew leaves that side open.
type TimeWindow struct {
	MaxAge  time.Duration
	AgeVar  string // the setting MaxAge comes from, named in reasons
	MaxSkew time.Duration
	SkewVar string
	Now     func() time.Time // default time.Now
}

// Check returns "" when t is accepted, else the refusal kind and a reason
// naming the record time, the bound and the setting.
func (w TimeWindow) Check(t time.Time) (kind, reason string) {
	if t.IsZero() {
		return NoTimestamp, "record has no timestamp"
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	if w.MaxAge > 0 && t.Before(now.Add(-w.MaxAge)) {
		return TooOld, fmt.Sprintf("record time %s is older than the retention window of %s (%s)", t.UTC().Format(time.RFC3339), FormatDuration(w.MaxAge), w.AgeVar)
	}
	if w.MaxSkew > 0 && t.After(now.Add(w.MaxSkew)) {
		return TooNew, fmt.Sprintf("record time %s is more than %s ahead of the clock (%s)", t.UTC().Format(time.RFC3339), FormatDuration(w.MaxSkew), w.SkewVar)
	}
	return "", ""
}

// FormatDuration renders whole days as "30d" and anything else as Go does.
func FormatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// IndexBudget bounds the new indices each topic may create per hour. An
// index is new when this process has not written to it and the cluster
// does not have it (Exists); the first sight of each name costs one
// existence check. Safe for concurrent use.
type IndexBudget struct {
	PerHour  int                                                   // <= 0: unbounded
	Exists   func(ctx context.Context, index string) (bool, error) // HEAD /<index>
	Now      func() time.Time                                      // default time.Now
	MaxKnown int                                                   // names remembered before the memory is cleared; default 10000

	mu      sync.Mutex
	known   map[string]struct{}
	created map[string][]time.Time // topic -> creations within the last hour
}

// Admission is IndexBudget's answer for one record.
type Admission struct {
	OK      bool      // the record may go to the index
	New     bool      // the index is new and was counted against the budget
	RetryAt time.Time // when !OK: when the topic's next creation slot frees
}

// Admit says whether a record of topic may go to index. err is the
// existence check's (transient: the caller retries).
func (b *IndexBudget) Admit(ctx context.Context, topic, index string) (Admission, error) {
	if b.PerHour <= 0 {
		return Admission{OK: true}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock() // held across the rare existence check: admissions of new names are serialised
	if b.known == nil {
		b.known = map[string]struct{}{}
		b.created = map[string][]time.Time{}
	}
	if _, ok := b.known[index]; ok {
		return Admission{OK: true}, nil
	}
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	recent := b.created[topic]
	for len(recent) > 0 && !recent[0].After(now.Add(-time.Hour)) {
		recent = recent[1:]
	}
	if len(recent) == 0 {
		delete(b.created, topic)
	} else {
		b.created[topic] = recent
	}
	if b.Exists != nil {
		exists, err := b.Exists(ctx, index)
		if err != nil {
			return Admission{}, fmt.Errorf("checking whether index %s exists: %w", index, err)
		}
		if exists {
			b.remember(index)
			return Admission{OK: true}, nil
		}
	}
	if len(recent) >= b.PerHour {
		return Admission{RetryAt: recent[0].Add(time.Hour)}, nil
	}
	b.created[topic] = append(recent, now)
	b.remember(index)
	return Admission{OK: true, New: true}, nil
}

func (b *IndexBudget) remember(index string) {
	limit := b.MaxKnown
	if limit <= 0 {
		limit = 10000
	}
	if len(b.known) >= limit {
		clear(b.known) // forgetting costs one existence check per name later
	}
	b.known[index] = struct{}{}
}
