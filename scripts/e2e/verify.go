package e2e

import (
	"fmt"
	"sort"
	"strconv"
)

// Loc is a record's place in Kafka.
type Loc struct {
	Topic     string
	Partition int
	Offset    int64
}

// DocID is the search document id the sink derives from a Loc.
func (l Loc) DocID() string {
	return l.Topic + "+" + strconv.Itoa(l.Partition) + "+" + strconv.FormatInt(l.Offset, 10)
}

// Problems collects invariant violations, keeping the first few of each kind.
type Problems struct {
	list  []string
	kinds map[string]int
}

// Addf records one violation of kind.
func (p *Problems) Addf(kind, format string, args ...any) {
	if p.kinds == nil {
		p.kinds = map[string]int{}
	}
	p.kinds[kind]++
	if p.kinds[kind] <= 5 {
		p.list = append(p.list, kind+": "+fmt.Sprintf(format, args...))
	}
}

// Count is the number of violations of kind.
func (p *Problems) Count(kind string) int { return p.kinds[kind] }

// Empty reports whether no violation was recorded.
func (p *Problems) Empty() bool { return len(p.kinds) == 0 }

// String lists the violations with totals per kind.
func (p *Problems) String() string {
	kinds := make([]string, 0, len(p.kinds))
	for k := range p.kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	s := ""
	for _, k := range kinds {
		s += fmt.Sprintf("%s: %d\n", k, p.kinds[k])
	}
	for _, l := range p.list {
		s += "  " + l + "\n"
	}
	return s
}

// CheckAcked: every record a producer got a success for is in Kafka, at the
// place the gateway reported, with the id that was sent.
func CheckAcked(p *Problems, acked map[string]Loc, kafka map[Loc]string) {
	for id, loc := range acked {
		got, ok := kafka[loc]
		switch {
		case !ok:
			p.Addf("acked-missing-from-kafka", "%s acked at %+v, nothing there", id, loc)
		case got != id:
			p.Addf("acked-wrong-record", "%s acked at %+v, Kafka holds %s", id, loc, got)
		}
	}
}

// CheckAbsent: ids the gateway rejected never reached the data topics.
func CheckAbsent(p *Problems, rejected []string, kafka map[Loc]string) {
	in := map[string]bool{}
	for _, id := range kafka {
		in[id] = true
	}
	for _, id := range rejected {
		if in[id] {
			p.Addf("rejected-in-kafka", "%s was rejected but is in Kafka", id)
		}
	}
}

// CheckExactlyOnce: the sink holds exactly the records of the topic, each as
// many times as Kafka holds it (once, unless a producer retry duplicated it
// in Kafka itself): no gap, no duplicate.
func CheckExactlyOnce(p *Problems, sink string, kafka map[Loc]string, topic string, sinkIDs []string) {
	want := map[string]int{}
	for loc, id := range kafka {
		if loc.Topic == topic {
			want[id]++
		}
	}
	got := map[string]int{}
	for _, id := range sinkIDs {
		got[id]++
	}
	for id, n := range want {
		switch g := got[id]; {
		case g < n:
			p.Addf(sink+"-missing", "%s/%s: %d in Kafka, %d in %s", topic, id, n, g, sink)
		case g > n:
			p.Addf(sink+"-duplicate", "%s/%s: %d in Kafka, %d in %s", topic, id, n, g, sink)
		}
	}
	for id, g := range got {
		if want[id] == 0 {
			p.Addf(sink+"-unexpected", "%s/%s: %d in %s, not in Kafka", topic, id, g, sink)
		}
	}
}

// CheckDocIDs: the index holds one document per Kafka offset of the topic,
// under the deterministic id, carrying that offset's record.
func CheckDocIDs(p *Problems, kafka map[Loc]string, topic string, docs map[string]string) {
	n := 0
	for loc, id := range kafka {
		if loc.Topic != topic {
			continue
		}
		n++
		got, ok := docs[loc.DocID()]
		switch {
		case !ok:
			p.Addf("search-missing", "no document %s (record %s)", loc.DocID(), id)
		case got != id:
			p.Addf("search-wrong-record", "document %s holds %s, Kafka %s", loc.DocID(), got, id)
		}
	}
	if len(docs) != n {
		p.Addf("search-count", "%s: %d documents for %d Kafka records", topic, len(docs), n)
	}
}
