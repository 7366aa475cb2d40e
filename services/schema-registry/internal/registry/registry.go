// Package registry implements the schema registry's operations (register,
// look up, delete, compatibility, config and mode) on top of the
// Kafka-backed store; the REST and gRPC layers translate to and from it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/services/schema-registry/internal/avroschema"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// DefaultCompatibility is the level used when none is configured.
const DefaultCompatibility = "BACKWARD"

// Modes are the registry modes.
var Modes = []string{"READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"}

// Backend is what the registry needs from the store: the applied state, a
// way to catch up with the log, and a way to append to it.
type Backend interface {
	State() *store.State
	Sync(ctx context.Context) error
	Write(ctx context.Context, key, value []byte) (int64, error)
}

// Names of the settings of the schema limits, for error messages.
const (
	SettingMaxSchemaTypes = "SCHEMA_REGISTRY_MAX_SCHEMA_TYPES"
	SettingMaxSchemaDepth = "SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH"
)

// DefaultLimits are avro's default schema limits, named after this
// service's settings.
func DefaultLimits() avro.SchemaLimits {
	l := avro.DefaultSchemaLimits()
	l.ExpandedTypesSetting, l.DepthSetting = SettingMaxSchemaTypes, SettingMaxSchemaDepth
	return l
}

// Options tune the registry.
type Options struct {
	MaxSchemaBytes int // 42209 above this; 0: 1 MiB
	MaxAttempts    int // optimistic write retries; 0: 20
	// Limits bound the expanded size and depth of schemas registered or
	// checked (42201 past them); zero: DefaultLimits.
	Limits avro.SchemaLimits
	// Metrics registers the registry's counters; nil: not registered.
	Metrics prometheus.Registerer
}

// Registry is the schema registry.
type Registry struct {
	b       Backend
	checker compat.Checker
	opts    Options
	log     *slog.Logger
	// writeMu serialises this replica's writes of registrations:
	// concurrent ones would all pick the same next id and version and
	// race each other in the log. Races with other replicas stay
	// optimistic. Nothing slow happens under it: parsing, measuring and
	// compatibility checks run before it is taken.
	writeMu sync.Mutex

	refused       *prometheus.CounterVec
	checkTimeouts prometheus.Counter
}

// New builds a registry.
func New(b Backend, checker compat.Checker, opts Options, log *slog.Logger) *Registry {
	if opts.MaxSchemaBytes <= 0 {
		opts.MaxSchemaBytes = 1 << 20
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 20
	}
	if opts.Limits == (avro.SchemaLimits{}) {
		opts.Limits = DefaultLimits()
	}
	r := &Registry{b: b, checker: checker, opts: opts, log: log}
	r.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_schema_registry_schemas_refused_total",
		Help: "Schemas refused for exceeding a schema limit (limit: expanded_types or depth), on registration or compatibility check.",
	}, []string{"limit"})
	r.checkTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_schema_registry_compat_check_timeouts_total",
		Help: "Compatibility checks stopped by their request's deadline (answered 50002).",
	})
	for _, l := range []avro.Limit{avro.LimitExpandedTypes, avro.LimitSchemaDepth} {
		r.refused.WithLabelValues(string(l))
	}
	if opts.Metrics != nil {
		opts.Metrics.MustRegister(r.refused, r.checkTimeouts)
	}
	return r
}

// State exposes the applied state for read-only queries.
func (r *Registry) State() *store.State { return r.b.State() }

// Reference names a type defined under another subject.
type Reference = store.Reference

// SchemaInput is a schema submitted for registration, lookup or a check.
type SchemaInput struct {
	Schema     string
	SchemaType string
	References []Reference
	Normalize  bool
	ID         int64  // IMPORT mode only; 0: not given
	Version    int64  // IMPORT mode only; 0: not given
	RawID      string // the id as the client wrote it ("" if not given): an explicit 0 is an id out of range
}

// MaxID is the largest schema id: ids travel in the 4-byte (signed)
// schema id of Confluent's wire format.
const MaxID = math.MaxInt32

// Registered is a subject version with its schema.
type Registered struct {
	Subject    string
	Version    int
	ID         int
	SchemaType string
	Schema     string
	References []Reference
	Deleted    bool
}

func fromVersion(v store.Version) Registered {
	return Registered{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: v.Schema.Type, Schema: v.Schema.Schema, References: v.Schema.References, Deleted: v.Deleted}
}

// prepared is a validated schema ready to compare and store.
type prepared struct {
	typ      string
	text     string // what is stored and served
	identity string
	parsed   compat.Schema
	refs     []Reference
}

func storeErr(err error) *Error {
	var ne net.Error
	if errors.Is(err, store.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return ErrTimeout(err)
	}
	return ErrStore(err)
}

// resolveRefs returns the schema texts of refs and of their own references,
// dependencies first.
func (r *Registry) resolveRefs(refs []Reference, seen map[string]bool, depth int) ([]string, error) {
	if depth > 32 {
		return nil, ErrInvalidSchema("references nest deeper than 32 levels")
	}
	st := r.b.State()
	var out []string
	for _, ref := range refs {
		if ref.Name == "" || ref.Subject == "" {
			return nil, ErrInvalidSchema("reference needs a name and a subject (got name %q, subject %q)", ref.Name, ref.Subject)
		}
		var v store.Version
		var ok bool
		if ref.Version == -1 || ref.Version == 0 {
			vs := st.Versions(ref.Subject, false)
			if len(vs) > 0 {
				v, ok = vs[len(vs)-1], true
			}
		} else {
			v, ok = st.Version(ref.Subject, ref.Version)
		}
		if !ok {
			return nil, ErrInvalidSchema("reference %q to subject %q version %d does not exist", ref.Name, ref.Subject, ref.Version)
		}
		key := v.Subject + "/" + strconv.Itoa(v.Version)
		if seen[key] {
			continue
		}
		seen[key] = true
		deps, err := r.resolveRefs(v.Schema.References, seen, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, deps...)
		out = append(out, v.Schema.Schema)
	}
	return out, nil
}

// prepare validates a schema and parses it for comparison. With limits,
// a schema (resolved through its references) over the schema limits is
// refused before any other parser walks it; lookups skip them (their work
// is linear, and schemas stored before a limit was lowered stay findable).
func (r *Registry) prepare(subject string, in SchemaInput, limits bool) (*prepared, error) {
	typ := strings.ToUpper(in.SchemaType)
	if typ == "" {
		typ = "AVRO"
	}
	if len(in.Schema) > r.opts.MaxSchemaBytes {
		return nil, newErr(http.StatusUnprocessableEntity, CodeSchemaTooLarge, "Schema is %d bytes, above the limit of %d bytes", len(in.Schema), r.opts.MaxSchemaBytes)
	}
	if typ != "AVRO" {
		return nil, ErrInvalidSchema("schemaType %s is not supported (this registry supports AVRO)", in.SchemaType)
	}
	if strings.TrimSpace(in.Schema) == "" {
		return nil, ErrInvalidSchema("field \"schema\" is empty")
	}
	refTexts, err := r.resolveRefs(in.References, map[string]bool{}, 0)
	if err != nil {
		return nil, err
	}
	var measureErr error
	if limits {
		if measureErr = r.checkLimits(subject, in.Schema, refTexts); measureErr != nil {
			var le *Error
			if errors.As(measureErr, &le) {
				return nil, le
			}
		}
	}
	if err := avroschema.Validate(in.Schema, refTexts); err != nil {
		return nil, ErrInvalidSchema("%v", err)
	}
	if measureErr != nil { // goavro took what the measure could not follow
		return nil, ErrInvalidSchema("%v", measureErr)
	}
	canon, err := avro.Canonical(in.Schema)
	if err != nil {
		return nil, ErrInvalidSchema("%v", err)
	}
	parsed, err := compat.Parse(in.Schema, refTexts)
	if err != nil {
		return nil, ErrInvalidSchema("%v", err)
	}
	text := compactJSON(in.Schema)
	if in.Normalize {
		text = canon
	}
	refs := in.References
	return &prepared{typ: typ, text: text, identity: store.IdentityOf(typ, in.Schema, refs), parsed: parsed, refs: refs}, nil
}

// checkLimits measures the schema with its references and returns a 42201
// *Error past the schema limits, counted and logged; any other error is
// the measure's reason for not following the schema.
func (r *Registry) checkLimits(subject, schema string, refTexts []string) error {
	st, err := r.opts.Limits.Check(schema, refTexts...)
	var le *avro.LimitError
	if !errors.As(err, &le) {
		return err
	}
	r.refused.WithLabelValues(string(le.Limit)).Inc()
	r.log.Info("schema refused: over a schema limit", "subject", subject, "limit", string(le.Limit), "value", le.Value, "at_least", le.AtLeast, "max", le.Max, "named_types", st.NamedTypes)
	return ErrInvalidSchema("%v", le)
}

// parsedVersion parses a stored version for compatibility checks.
func (r *Registry) parsedVersion(v store.Version) (compat.Schema, error) {
	refTexts, err := r.resolveRefs(v.Schema.References, map[string]bool{}, 0)
	if err != nil {
		return compat.Schema{}, err
	}
	return compat.Parse(v.Schema.Schema, refTexts)
}

func (r *Registry) modeOf(subject string) string {
	st := r.b.State()
	if m, ok := st.Mode(subject); ok && subject != "" {
		return m
	}
	if m, ok := st.Mode(""); ok {
		return m
	}
	return "READWRITE"
}

// Level returns the effective compatibility level of subject.
func (r *Registry) Level(subject string) string {
	st := r.b.State()
	if subject != "" {
		if l, ok := st.Config(subject); ok {
			return l
		}
	}
	if l, ok := st.Config(""); ok {
		return l
	}
	return DefaultCompatibility
}

func (r *Registry) writable(subject string) error {
	switch r.modeOf(subject) {
	case "READONLY", "READONLY_OVERRIDE":
		return ErrNotPermitted("Subject %s is in read-only mode", subject)
	}
	return nil
}

// Register registers a schema under subject, idempotently, and returns
// the subject version it has.
//
// Everything slow (parsing, measuring, resolving references, the
// compatibility check) happens before the write lock is taken; under it
// the subject is compared with what the check saw, and the check runs
// again (outside the lock) only if a version, the level or the mode
// changed in between. The log orders the writes of all replicas: the
// first record in log order wins, and a loser retries.
func (r *Registry) Register(ctx context.Context, subject string, in SchemaInput) (Registered, error) {
	if err := validSubject(subject); err != nil {
		return Registered{}, err
	}
	if err := r.b.Sync(ctx); err != nil {
		return Registered{}, storeErr(err)
	}
	mode := r.modeOf(subject)
	if err := r.writable(subject); err != nil {
		return Registered{}, err
	}
	if mode == "IMPORT" {
		if err := importIDs(in); err != nil {
			return Registered{}, err
		}
	} else if in.ID > 0 || in.Version > 0 {
		return Registered{}, ErrNotPermitted("Subject %s is not in import mode: a schema id or version can only be given in IMPORT mode", subject)
	}
	p, err := r.prepare(subject, in, true)
	if err != nil {
		return Registered{}, err
	}
	var checked *subjectSnapshot // what the last compatibility check was run against
	// Only records that lost a race in the log count as attempts: a
	// subject that changed while this registration was being checked
	// means another one was written, so retrying makes progress; the
	// request's deadline bounds those retries.
	for lost := 0; lost < r.opts.MaxAttempts; {
		if err := ctx.Err(); err != nil {
			return Registered{}, ErrTimeout(fmt.Errorf("registration under %s: %w", subject, err))
		}
		snap := r.snapshot(subject)
		if snap.mode != mode { // the checks above were for the other mode
			return Registered{}, ErrNotPermitted("The mode of subject %s changed from %s to %s during the registration", subject, mode, snap.mode)
		}
		// Already registered under this subject: answer with it.
		if v, ok := snap.holding(p.identity, in.ID); ok {
			return fromVersion(v), nil
		}
		if snap.mode != "IMPORT" && (checked == nil || !checked.same(snap)) {
			msgs, err := r.checkAgainst(ctx, subject, p.parsed, snap.level, snap.versions, false)
			if err != nil {
				return Registered{}, err
			}
			if len(msgs) > 0 {
				return Registered{}, &Error{Status: http.StatusConflict, Code: CodeIncompatible, Message: "Schema being registered is incompatible with an earlier schema for subject \"" + subject + "\", details: [" + strings.Join(msgs, ", ") + "]"}
			}
			checked = &snap
		}
		v, outcome, err := r.write(ctx, subject, in, p, snap)
		switch {
		case err != nil || outcome == written:
			return v, err
		case outcome == lostRace:
			lost++
		}
	}
	return Registered{}, ErrTimeout(fmt.Errorf("registration under %s kept losing concurrent races after %d attempts", subject, r.opts.MaxAttempts))
}

// writeOutcome is what happened to a registration's write.
type writeOutcome int

const (
	written  writeOutcome = iota // done (or refused: see the error)
	changed                      // the subject changed since the check: check again
	lostRace                     // the record lost against an earlier one in the log
)

// importIDs checks the id and version given in IMPORT mode: they must fit
// the wire format's 4-byte id and Confluent's version range.
func importIDs(in SchemaInput) error {
	if in.ID == 0 && in.RawID == "" {
		return ErrNotPermitted("IMPORT mode needs a schema id in field \"id\"")
	}
	if in.ID < 1 || in.ID > MaxID {
		raw := in.RawID
		if raw == "" {
			raw = strconv.FormatInt(in.ID, 10)
		}
		return ErrNotPermitted("Schema id %s is outside the range 1..%d: ids must fit the 4-byte schema id of the wire format", raw, MaxID)
	}
	if in.Version < 0 || in.Version > math.MaxInt32 {
		return ErrInvalidVersion(strconv.FormatInt(in.Version, 10))
	}
	return nil
}

// write writes the registration under the write lock, if the subject is
// still as snap saw it.
func (r *Registry) write(ctx context.Context, subject string, in SchemaInput, p *prepared, snap subjectSnapshot) (Registered, writeOutcome, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if !snap.same(r.snapshot(subject)) {
		return Registered{}, changed, nil
	}
	st := r.b.State()
	var id, version int
	if snap.mode == "IMPORT" {
		id = int(in.ID)
		if held, ok := st.SchemaByID(id); ok && held.Identity != p.identity {
			return Registered{}, written, ErrNotPermitted("Overwrite new schema with id %d is not permitted: the id holds another schema", id)
		}
		version = int(in.Version)
		if version <= 0 {
			version = st.MaxVersion(subject) + 1
		} else if v, ok := st.Version(subject, version); ok && v.Schema.Identity != p.identity {
			return Registered{}, written, ErrNotPermitted("Overwrite new schema with version %d of subject %s is not permitted", version, subject)
		}
	} else {
		if existing, ok := st.IDForIdentity(p.identity); ok {
			id = existing
		} else {
			id = st.MaxID() + 1
		}
		version = st.MaxVersion(subject) + 1
	}
	val := store.SchemaValue{Subject: subject, Version: version, ID: id, SchemaType: p.typ, References: p.refs, Schema: p.text}
	off, err := r.b.Write(ctx, store.SchemaKey(subject, version), val.Encode())
	if err != nil {
		return Registered{}, written, storeErr(err)
	}
	if got, ok := st.Version(subject, version); ok && got.ID == id && got.Schema.Identity == p.identity {
		return fromVersion(got), written, nil
	}
	// Another replica's write came first in the log. If ours took a key
	// the winner holds, compaction would keep ours (the later record):
	// re-assert the winner so the compacted log agrees.
	if reason, ok := st.ConflictAt(off); ok {
		r.log.Info("registration lost a race, retrying", "subject", subject, "version", version, "id", id, "reason", reason, "offset", off)
		if winner, ok := st.Version(subject, version); ok {
			if err := r.reassert(ctx, winner); err != nil {
				return Registered{}, written, storeErr(err)
			}
		}
		st.ForgetConflict(off)
	}
	return Registered{}, lostRace, nil
}

// subjectSnapshot is what a registration's compatibility check depends
// on: the subject's live versions, its level and its mode.
type subjectSnapshot struct {
	level, mode string
	versions    []store.Version
}

func (r *Registry) snapshot(subject string) subjectSnapshot {
	return subjectSnapshot{level: r.Level(subject), mode: r.modeOf(subject), versions: r.b.State().Versions(subject, false)}
}

// same reports whether nothing the check depends on changed: a version
// is the same if the same record made it.
func (s subjectSnapshot) same(o subjectSnapshot) bool {
	if s.level != o.level || s.mode != o.mode || len(s.versions) != len(o.versions) {
		return false
	}
	for i, v := range s.versions {
		w := o.versions[i]
		if v.Version != w.Version || v.ID != w.ID || v.Offset != w.Offset || v.Schema != w.Schema {
			return false
		}
	}
	return true
}

// holding returns the live version holding the schema (with id, if given).
func (s subjectSnapshot) holding(identity string, id int64) (store.Version, bool) {
	for _, v := range s.versions {
		if v.Schema.Identity == identity && (id <= 0 || id == int64(v.ID)) {
			return v, true
		}
	}
	return store.Version{}, false
}

func (r *Registry) reassert(ctx context.Context, v store.Version) error {
	val := store.SchemaValue{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: v.Schema.Type, References: v.Schema.References, Schema: v.Schema.Schema, Deleted: v.Deleted}
	_, err := r.b.Write(ctx, store.SchemaKey(v.Subject, v.Version), val.Encode())
	return err
}

// checkAgainst checks candidate against vers (a subject's live versions,
// oldest first) under level; one restricts the check to the one version
// given. It runs without any lock and stops at ctx's deadline (50002).
func (r *Registry) checkAgainst(ctx context.Context, subject string, candidate compat.Schema, level string, vers []store.Version, one bool) ([]string, error) {
	if one && level != "NONE" {
		level = strings.TrimSuffix(level, "_TRANSITIVE")
	}
	if level == "NONE" || len(vers) == 0 {
		return nil, nil
	}
	if !strings.HasSuffix(level, "_TRANSITIVE") {
		vers = vers[len(vers)-1:]
	}
	existing := make([]compat.Schema, 0, len(vers))
	for _, v := range vers {
		ps, err := r.parsedVersion(v)
		if err != nil {
			return nil, ErrStore(fmt.Errorf("parsing stored %s version %d: %w", v.Subject, v.Version, err))
		}
		existing = append(existing, ps)
	}
	msgs, err := compat.CheckLevel(ctx, r.checker, level, candidate, existing)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			r.checkTimeouts.Inc()
			r.log.Warn("compatibility check stopped by the request deadline", "subject", subject, "versions", len(existing), "err", err)
			return nil, ErrTimeout(fmt.Errorf("the compatibility check against subject %s did not finish before the request's deadline: %w", subject, err))
		}
		return nil, ErrStore(fmt.Errorf("checking compatibility against subject %s: %w", subject, err))
	}
	return msgs, nil
}

// CheckCompatibility tests a schema against one version ("latest" or a
// number) or, with version "", every version the level demands. The
// schema limits apply as on registration.
func (r *Registry) CheckCompatibility(ctx context.Context, subject, version string, in SchemaInput) (bool, []string, error) {
	p, err := r.prepare(subject, in, true)
	if err != nil {
		return false, nil, err
	}
	level := r.Level(subject)
	vers := r.b.State().Versions(subject, false)
	one := false
	if version != "" {
		v, err := r.GetVersion(subject, version, false)
		if err != nil {
			return false, nil, err
		}
		sv, _ := r.b.State().Version(v.Subject, v.Version)
		vers, one = []store.Version{sv}, true
	}
	msgs, err := r.checkAgainst(ctx, subject, p.parsed, level, vers, one)
	if err != nil {
		return false, nil, err
	}
	return len(msgs) == 0, msgs, nil
}

// Lookup finds the version of subject holding schema.
func (r *Registry) Lookup(ctx context.Context, subject string, in SchemaInput, deleted bool) (Registered, error) {
	st := r.b.State()
	if !st.SubjectExists(subject, deleted) {
		return Registered{}, ErrSubjectNotFound(subject)
	}
	p, err := r.prepare(subject, in, false)
	if err != nil {
		return Registered{}, err
	}
	vs := st.Versions(subject, deleted)
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Schema.Identity == p.identity {
			return fromVersion(vs[i]), nil
		}
	}
	return Registered{}, ErrSchemaNotFound("not found under subject '" + subject + "'")
}

// ParseVersion parses "latest", "-1" or a positive number.
func ParseVersion(s string) (int, error) {
	if s == "latest" || s == "-1" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, ErrInvalidVersion(s)
	}
	return n, nil
}

// GetVersion returns one version of subject; "latest" is the newest live
// one. Soft-deleted versions are found only with deleted.
func (r *Registry) GetVersion(subject, version string, deleted bool) (Registered, error) {
	n, err := ParseVersion(version)
	if err != nil {
		return Registered{}, err
	}
	st := r.b.State()
	if !st.SubjectExists(subject, deleted) {
		return Registered{}, ErrSubjectNotFound(subject)
	}
	if n == -1 {
		vs := st.Versions(subject, deleted)
		if len(vs) == 0 {
			return Registered{}, ErrSubjectNotFound(subject)
		}
		return fromVersion(vs[len(vs)-1]), nil
	}
	v, ok := st.Version(subject, n)
	if !ok || (v.Deleted && !deleted) {
		return Registered{}, ErrVersionNotFound(version)
	}
	return fromVersion(v), nil
}

// DeleteVersion soft-deletes one version, or removes a soft-deleted one
// with permanent.
func (r *Registry) DeleteVersion(ctx context.Context, subject, version string, permanent bool) (int, error) {
	n, err := ParseVersion(version)
	if err != nil {
		return 0, err
	}
	if err := r.b.Sync(ctx); err != nil {
		return 0, storeErr(err)
	}
	if err := r.writable(subject); err != nil {
		return 0, err
	}
	st := r.b.State()
	if !st.SubjectExists(subject, true) {
		return 0, ErrSubjectNotFound(subject)
	}
	var v store.Version
	var ok bool
	if n == -1 {
		vs := st.Versions(subject, permanent)
		if len(vs) > 0 {
			v, ok = vs[len(vs)-1], true
		}
	} else {
		v, ok = st.Version(subject, n)
	}
	if !ok {
		return 0, ErrVersionNotFound(version)
	}
	if !permanent && v.Deleted {
		return 0, newErr(http.StatusNotFound, CodeVersionSoftDeleted, "Subject '%s' Version %d was soft deleted. Set permanent=true to delete permanently", subject, v.Version)
	}
	if permanent && !v.Deleted {
		return 0, newErr(http.StatusNotFound, CodeVersionNotSoftDeleted, "Subject '%s' Version %d was not deleted first before being permanently deleted", subject, v.Version)
	}
	if ids := st.ReferencedBy(subject, v.Version); len(ids) > 0 {
		return 0, newErr(http.StatusUnprocessableEntity, CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", subject, v.Version, ids)
	}
	if permanent {
		if err = r.writeWatermark(ctx); err == nil {
			_, err = r.b.Write(ctx, store.SchemaKey(subject, v.Version), nil)
		}
	} else {
		err = r.writeDeleted(ctx, v)
	}
	if err != nil {
		return 0, storeErr(err)
	}
	return v.Version, nil
}

// writeWatermark records the highest id assigned so far before records
// are tombstoned: ids are never reused, even once compaction has removed
// every record that carried them.
func (r *Registry) writeWatermark(ctx context.Context) error {
	val := mustEncode(store.DeleteSubjectValue{Subject: store.WatermarkSubject, Version: r.b.State().MaxID()})
	_, err := r.b.Write(ctx, store.DeleteSubjectKey(store.WatermarkSubject), val)
	return err
}

func (r *Registry) writeDeleted(ctx context.Context, v store.Version) error {
	v.Deleted = true
	return r.reassert(ctx, v)
}

// DeleteSubject soft-deletes every version of subject, or removes them
// all (already soft-deleted) with permanent. It returns the versions.
func (r *Registry) DeleteSubject(ctx context.Context, subject string, permanent bool) ([]int, error) {
	if err := r.b.Sync(ctx); err != nil {
		return nil, storeErr(err)
	}
	if err := r.writable(subject); err != nil {
		return nil, err
	}
	st := r.b.State()
	all := st.Versions(subject, true)
	if len(all) == 0 {
		return nil, ErrSubjectNotFound(subject)
	}
	live := st.Versions(subject, false)
	if !permanent && len(live) == 0 {
		return nil, newErr(http.StatusNotFound, CodeSubjectSoftDeleted, "Subject '%s' was soft deleted. Set permanent=true to delete permanently", subject)
	}
	if permanent && len(live) > 0 {
		return nil, newErr(http.StatusNotFound, CodeSubjectNotSoftDeleted, "Subject '%s' was not deleted first before being permanently deleted", subject)
	}
	for _, v := range all {
		if ids := st.ReferencedBy(subject, v.Version); len(ids) > 0 {
			return nil, newErr(http.StatusUnprocessableEntity, CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", subject, v.Version, ids)
		}
	}
	if permanent {
		if err := r.writeWatermark(ctx); err != nil {
			return nil, storeErr(err)
		}
	}
	out := []int{}
	for _, v := range all {
		var err error
		if permanent {
			_, err = r.b.Write(ctx, store.SchemaKey(subject, v.Version), nil)
		} else {
			err = r.writeDeleted(ctx, v)
		}
		if err != nil {
			return nil, storeErr(err)
		}
		out = append(out, v.Version)
	}
	if permanent {
		if _, ok := st.Config(subject); ok {
			if _, err := r.b.Write(ctx, store.ConfigKey(subject), nil); err != nil {
				return nil, storeErr(err)
			}
		}
		if _, ok := st.Mode(subject); ok {
			if _, err := r.b.Write(ctx, store.ModeKey(subject), nil); err != nil {
				return nil, storeErr(err)
			}
		}
	}
	return out, nil
}

// GetConfig returns the compatibility level of subject ("" global).
func (r *Registry) GetConfig(subject string, defaultToGlobal bool) (string, error) {
	if subject == "" {
		return r.Level(""), nil
	}
	if l, ok := r.b.State().Config(subject); ok {
		return l, nil
	}
	if defaultToGlobal {
		return r.Level(""), nil
	}
	return "", newErr(http.StatusNotFound, CodeSubjectConfigNotFound, "Subject '%s' does not have subject-level compatibility configured", subject)
}

// SetConfig sets the compatibility level of subject ("" global).
func (r *Registry) SetConfig(ctx context.Context, subject, level string) (string, error) {
	level = strings.ToUpper(strings.TrimSpace(level))
	if !compat.ValidLevel(level) {
		return "", newErr(http.StatusUnprocessableEntity, CodeInvalidCompatibility, "Invalid compatibility level %q in field \"compatibility\". Valid values are %s", level, strings.Join(compat.Levels, ", "))
	}
	if subject != "" {
		if err := validSubject(subject); err != nil {
			return "", err
		}
	}
	if err := r.writable(subject); err != nil && subject != "" {
		return "", err
	}
	val := mustEncode(store.ConfigValue{CompatibilityLevel: level})
	if _, err := r.b.Write(ctx, store.ConfigKey(subject), val); err != nil {
		return "", storeErr(err)
	}
	return level, nil
}

// DeleteConfig removes subject's level (the global one resets to the
// default) and returns the level it had.
func (r *Registry) DeleteConfig(ctx context.Context, subject string) (string, error) {
	prev := r.Level(subject)
	if subject != "" {
		if _, ok := r.b.State().Config(subject); !ok {
			if !r.b.State().SubjectExists(subject, true) {
				return "", ErrSubjectNotFound(subject)
			}
			return "", newErr(http.StatusNotFound, CodeSubjectConfigNotFound, "Subject '%s' does not have subject-level compatibility configured", subject)
		}
	}
	if _, err := r.b.Write(ctx, store.ConfigKey(subject), nil); err != nil {
		return "", storeErr(err)
	}
	return prev, nil
}

// GetMode returns the mode of subject ("" global).
func (r *Registry) GetMode(subject string, defaultToGlobal bool) (string, error) {
	if subject == "" {
		return r.modeOf(""), nil
	}
	if m, ok := r.b.State().Mode(subject); ok {
		return m, nil
	}
	if defaultToGlobal {
		return r.modeOf(""), nil
	}
	return "", newErr(http.StatusNotFound, CodeSubjectModeNotFound, "Subject '%s' does not have subject-level mode configured", subject)
}

// SetMode sets the mode of subject ("" global). Switching a registry that
// holds schemas to IMPORT needs force.
func (r *Registry) SetMode(ctx context.Context, subject, mode string, force bool) (string, error) {
	mode = strings.ToUpper(strings.TrimSpace(mode))
	valid := false
	for _, m := range Modes {
		valid = valid || m == mode
	}
	if !valid {
		return "", newErr(http.StatusUnprocessableEntity, CodeInvalidMode, "Invalid mode %q in field \"mode\". Valid values are READWRITE, READONLY, READONLY_OVERRIDE, IMPORT", mode)
	}
	if err := r.b.Sync(ctx); err != nil {
		return "", storeErr(err)
	}
	if mode == "IMPORT" && !force {
		st := r.b.State()
		nonEmpty := len(st.Subjects(true, "")) > 0
		if subject != "" {
			nonEmpty = st.SubjectExists(subject, true)
		}
		if nonEmpty {
			return "", ErrNotPermitted("Cannot import since found existing subjects; set force=true to switch to IMPORT anyway")
		}
	}
	val := mustEncode(store.ModeValue{Mode: mode})
	if _, err := r.b.Write(ctx, store.ModeKey(subject), val); err != nil {
		return "", storeErr(err)
	}
	return mode, nil
}

// DeleteMode removes subject's mode and returns the mode it had.
func (r *Registry) DeleteMode(ctx context.Context, subject string) (string, error) {
	prev := r.modeOf(subject)
	if subject != "" {
		if _, ok := r.b.State().Mode(subject); !ok {
			return "", newErr(http.StatusNotFound, CodeSubjectModeNotFound, "Subject '%s' does not have subject-level mode configured", subject)
		}
	}
	if _, err := r.b.Write(ctx, store.ModeKey(subject), nil); err != nil {
		return "", storeErr(err)
	}
	return prev, nil
}

func validSubject(s string) error {
	if strings.TrimSpace(s) == "" {
		return ErrBadRequest("subject must not be empty")
	}
	for _, c := range s {
		if c < 0x20 {
			return ErrBadRequest("subject %q contains a control character", s)
		}
	}
	return nil
}
