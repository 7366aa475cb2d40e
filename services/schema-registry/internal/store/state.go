package store

import (
	"encoding/json"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/services/schema-registry/internal/avroschema"
)

// Schema is one registered schema, shared by every subject version that
// registered it.
type Schema struct {
	ID         int
	Type       string
	Schema     string
	References []Reference
	Identity   string // canonical identity: equal identities are the same schema

	// ByIDJSON is the REST answer for GET /schemas/ids/{id}, encoded once:
	// by-id lookups are the hot path of every consumer.
	ByIDJSON []byte
}

func encodeByID(sc *Schema) []byte {
	t := sc.Type
	if t == "AVRO" {
		t = ""
	}
	return append(mustJSON(struct {
		SchemaType string      `json:"schemaType,omitempty"`
		Schema     string      `json:"schema"`
		References []Reference `json:"references,omitempty"`
	}{t, sc.Schema, sc.References}), '\n')
}

// Version is one subject version as the log last set it.
type Version struct {
	Subject string
	Version int
	ID      int
	Deleted bool
	Offset  int64 // offset of the record that created it
	Schema  *Schema
}

// Conflict says that the record at Offset lost against an earlier record:
// first in log order wins.
type Conflict struct {
	Offset int64
	Reason string
}

// State is the registry's in-memory view of the _schemas log. Apply is the
// only way it changes, so every replica that applies the same log holds
// the same state. Safe for concurrent use.
type State struct {
	log *slog.Logger

	mu         sync.RWMutex
	subjects   map[string]map[int]*Version
	ids        map[int]*Schema
	idUse      map[int]int
	identities map[string]int
	maxID      int
	config     map[string]string // "" is the global level
	mode       map[string]string
	next       int64 // next offset to apply
	conflicts  map[int64]string
	// lost holds subject versions whose last record in the log lost a race:
	// compaction would keep that record, so the winner must be written again.
	lost   map[svKey]time.Time
	notify chan struct{}
}

type svKey struct {
	subject string
	version int
}

const maxConflicts = 4096

// WatermarkSubject names the DELETE_SUBJECT record that keeps the highest
// id ever assigned in the log ("version" carries it). Permanent deletes
// write it before their tombstones, so that compaction removing the
// records of a deleted id cannot make a replica reissue that id. To
// Confluent it is a soft delete of a subject that does not exist: a no-op.
const WatermarkSubject = "__sluice.id-watermark"

// NewState returns an empty state.
func NewState(log *slog.Logger) *State {
	return &State{
		log:        log,
		subjects:   map[string]map[int]*Version{},
		ids:        map[int]*Schema{},
		idUse:      map[int]int{},
		identities: map[string]int{},
		config:     map[string]string{},
		mode:       map[string]string{},
		conflicts:  map[int64]string{},
		lost:       map[svKey]time.Time{},
		notify:     make(chan struct{}),
	}
}

// Next is the offset after the last applied record.
func (s *State) Next() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next
}

// Notify returns a channel closed at the next Apply.
func (s *State) Notify() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.notify
}

// IdentityOf computes the identity of a stored schema, tolerating schemas
// our parser rejects (a Confluent log may hold them): those are compared
// by their compacted text.
func IdentityOf(schemaType, schema string, refs []Reference) string {
	canon := schema
	if schemaType == "" || schemaType == "AVRO" {
		if c, err := avro.Canonical(schema); err == nil {
			canon = c
		}
	} else {
		var buf strings.Builder
		var v any
		if json.Unmarshal([]byte(schema), &v) == nil {
			if b, err := json.Marshal(v); err == nil {
				buf.Write(b)
				canon = buf.String()
			}
		}
	}
	r := make([]avroschema.Reference, len(refs))
	for i, x := range refs {
		r[i] = avroschema.Reference{Name: x.Name, Subject: x.Subject, Version: x.Version}
	}
	return avroschema.IdentityKey(schemaType, canon, r)
}

// Apply applies one record. Malformed records are logged and skipped: a
// registry must keep serving what it can read.
func (s *State) Apply(offset int64, key, value []byte) {
	k, err := ParseKey(key)
	s.mu.Lock()
	defer func() {
		if offset >= s.next {
			s.next = offset + 1
		}
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
	}()
	if err != nil {
		s.log.Warn("skipping unreadable _schemas record", "offset", offset, "err", err)
		return
	}
	subject := ""
	if k.Subject != nil {
		subject = *k.Subject
	}
	if len(s.conflicts) > maxConflicts {
		// Conflicts are only read by the writer that is waiting for its
		// record; forget the old ones other replicas' races left behind.
		for off := range s.conflicts {
			if off < offset-maxConflicts {
				delete(s.conflicts, off)
			}
		}
	}
	switch k.Type {
	case KeySchema:
		s.applySchema(offset, subject, k.Version, value)
	case KeyConfig:
		if value == nil {
			delete(s.config, subject)
			return
		}
		lvl, err := ParseConfigValue(value)
		if err != nil {
			s.log.Warn("skipping unreadable CONFIG record", "offset", offset, "err", err)
			return
		}
		if lvl == "" {
			// Newer Confluent versions write configs that only set other
			// fields (normalize, metadata): no compatibility override.
			delete(s.config, subject)
			return
		}
		s.config[subject] = strings.ToUpper(lvl)
	case KeyMode:
		if value == nil {
			delete(s.mode, subject)
			return
		}
		m, err := ParseModeValue(value)
		if err != nil || m == "" {
			s.log.Warn("skipping unreadable MODE record", "offset", offset, "err", err)
			return
		}
		s.mode[subject] = strings.ToUpper(m)
	case KeyDeleteSubject:
		if value == nil {
			return
		}
		v, err := ParseDeleteSubjectValue(value)
		if err != nil {
			s.log.Warn("skipping unreadable DELETE_SUBJECT record", "offset", offset, "err", err)
			return
		}
		if subject == WatermarkSubject {
			if v.Version > s.maxID {
				s.maxID = v.Version
			}
			return
		}
		for n, ver := range s.subjects[subject] {
			if n <= v.Version {
				ver.Deleted = true
			}
		}
	default:
		// NOOP, CLEAR_SUBJECT (its tombstones follow), and key types of
		// newer Confluent versions (contexts, tenants) change nothing here.
	}
}

func (s *State) applySchema(offset int64, subject string, version int, value []byte) {
	vers := s.subjects[subject]
	cur := vers[version]
	if value == nil {
		delete(s.lost, svKey{subject, version})
		if cur != nil {
			s.removeVersion(cur)
		}
		return
	}
	v, err := ParseSchemaValue(value)
	if err != nil {
		s.log.Warn("skipping unreadable SCHEMA record", "offset", offset, "err", err)
		return
	}
	if v.ID > s.maxID {
		s.maxID = v.ID
	}
	identity := IdentityOf(v.SchemaType, v.Schema, v.References)
	if cur != nil {
		if cur.ID == v.ID && cur.Schema.Identity == identity {
			cur.Deleted = v.Deleted // soft delete, or the winner re-asserted
			delete(s.lost, svKey{subject, version})
			return
		}
		s.conflicts[offset] = "subject version already holds another schema"
		if _, ok := s.lost[svKey{subject, version}]; !ok {
			s.lost[svKey{subject, version}] = time.Now()
		}
		return
	}
	if !v.Deleted && s.modeLocked(subject) != "IMPORT" {
		for _, other := range vers {
			if !other.Deleted && other.Schema.Identity == identity {
				// Two replicas registered the same schema under the
				// subject at once: the first version stands.
				s.conflicts[offset] = "schema already registered under this subject at version " + strconv.Itoa(other.Version)
				return
			}
		}
	}
	if held, ok := s.ids[v.ID]; ok && held.Identity != identity {
		s.conflicts[offset] = "id already assigned to another schema"
		return
	}
	if id, ok := s.identities[identity]; ok && id != v.ID && s.modeLocked(subject) != "IMPORT" {
		s.conflicts[offset] = "schema already has another id"
		return
	}
	sc, ok := s.ids[v.ID]
	if !ok {
		sc = &Schema{ID: v.ID, Type: v.Type(), Schema: v.Schema, References: v.References, Identity: identity}
		sc.ByIDJSON = encodeByID(sc)
		s.ids[v.ID] = sc
	}
	if _, ok := s.identities[identity]; !ok {
		s.identities[identity] = v.ID
	}
	s.idUse[v.ID]++
	if vers == nil {
		vers = map[int]*Version{}
		s.subjects[subject] = vers
	}
	vers[version] = &Version{Subject: subject, Version: version, ID: v.ID, Deleted: v.Deleted, Offset: offset, Schema: sc}
}

func (s *State) removeVersion(v *Version) {
	delete(s.subjects[v.Subject], v.Version)
	if len(s.subjects[v.Subject]) == 0 {
		delete(s.subjects, v.Subject)
	}
	s.idUse[v.ID]--
	if s.idUse[v.ID] <= 0 {
		delete(s.idUse, v.ID)
		if sc := s.ids[v.ID]; sc != nil && s.identities[sc.Identity] == v.ID {
			delete(s.identities, sc.Identity)
		}
		delete(s.ids, v.ID)
	}
}

// LostKeys returns the subject versions whose last record lost a race at
// least minAge ago and whose winner has not been written again since.
func (s *State) LostKeys(minAge time.Duration) []Version {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Version
	for k, at := range s.lost {
		if time.Since(at) < minAge {
			continue
		}
		if v, ok := s.subjects[k.subject][k.version]; ok {
			out = append(out, *v)
		}
	}
	return out
}

// ConflictAt returns why the record at offset lost, if it did.
func (s *State) ConflictAt(offset int64) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.conflicts[offset]
	return r, ok
}

// ForgetConflict drops a conflict once its writer has handled it.
func (s *State) ForgetConflict(offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conflicts, offset)
}

// SchemaByID returns the schema with a global id.
func (s *State) SchemaByID(id int) (*Schema, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sc, ok := s.ids[id]
	return sc, ok
}

// IDForIdentity returns the id a schema identity already has.
func (s *State) IDForIdentity(identity string) (int, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.identities[identity]
	return id, ok
}

// MaxID is the highest id seen in the log.
func (s *State) MaxID() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxID
}

// SubjectExists reports whether subject has any version; with deleted
// false, any live version.
func (s *State) SubjectExists(subject string, deleted bool) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.subjects[subject] {
		if deleted || !v.Deleted {
			return true
		}
	}
	return false
}

// Subjects lists subjects with a live version (or any, with deleted),
// filtered by prefix, sorted.
func (s *State) Subjects(deleted bool, prefix string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []string{}
	for name, vers := range s.subjects {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, v := range vers {
			if deleted || !v.Deleted {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Versions returns a subject's versions in order, copied.
func (s *State) Versions(subject string, deleted bool) []Version {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Version, 0, len(s.subjects[subject]))
	for _, v := range s.subjects[subject] {
		if deleted || !v.Deleted {
			out = append(out, *v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Version returns one subject version (deleted ones included), copied.
func (s *State) Version(subject string, version int) (Version, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.subjects[subject][version]
	if !ok {
		return Version{}, false
	}
	return *v, true
}

// MaxVersion is the highest version number a subject has ever kept in
// the log (deleted versions included), or 0.
func (s *State) MaxVersion(subject string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := 0
	for n := range s.subjects[subject] {
		if n > m {
			m = n
		}
	}
	return m
}

// UsesOf returns every subject version registered with id.
func (s *State) UsesOf(id int, deleted bool) []Version {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Version
	for _, vers := range s.subjects {
		for _, v := range vers {
			if v.ID == id && (deleted || !v.Deleted) {
				out = append(out, *v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// ReferencedBy returns the ids of live schemas that reference
// subject/version, sorted.
func (s *State) ReferencedBy(subject string, version int) []int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[int]bool{}
	for _, vers := range s.subjects {
		for _, v := range vers {
			if v.Deleted || seen[v.ID] {
				continue
			}
			for _, r := range v.Schema.References {
				if r.Subject == subject && r.Version == version {
					seen[v.ID] = true
				}
			}
		}
	}
	out := make([]int, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

// AllVersions returns every subject version, sorted by subject and version.
func (s *State) AllVersions(deleted bool) []Version {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Version
	for _, vers := range s.subjects {
		for _, v := range vers {
			if deleted || !v.Deleted {
				out = append(out, *v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// Config returns the compatibility level set for subject ("" global).
func (s *State) Config(subject string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.config[subject]
	return c, ok
}

// Mode returns the mode set for subject ("" global).
func (s *State) Mode(subject string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.mode[subject]
	return m, ok
}

func (s *State) modeLocked(subject string) string {
	if m, ok := s.mode[subject]; ok {
		return m
	}
	return s.mode[""]
}

// Counts returns the number of live subjects and distinct schema ids.
func (s *State) Counts() (subjects, schemas int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, vers := range s.subjects {
		for _, v := range vers {
			if !v.Deleted {
				subjects++
				break
			}
		}
	}
	return subjects, len(s.ids)
}

// Dump is a deterministic description of the whole state, for tests that
// compare replicas and restarts.
func (s *State) Dump() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	type ver struct {
		Subject string
		Version int
		ID      int
		Deleted bool
		Schema  string
	}
	d := struct {
		Versions []ver
		MaxID    int
		Config   map[string]string
		Mode     map[string]string
	}{MaxID: s.maxID, Config: s.config, Mode: s.mode}
	for _, vers := range s.subjects {
		for _, v := range vers {
			d.Versions = append(d.Versions, ver{v.Subject, v.Version, v.ID, v.Deleted, v.Schema.Schema})
		}
	}
	sort.Slice(d.Versions, func(i, j int) bool {
		if d.Versions[i].Subject != d.Versions[j].Subject {
			return d.Versions[i].Subject < d.Versions[j].Subject
		}
		return d.Versions[i].Version < d.Versions[j].Version
	})
	b, _ := json.Marshal(d)
	return string(b)
}
