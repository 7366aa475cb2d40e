package httpapi

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// produceQuery is the native endpoint's query string, parsed strictly: a
// value that does not parse is a 400 naming the parameter, never a silent
// fallback (an unparsable schema_id once meant "the latest schema").
type produceQuery struct {
	SchemaID      int
	SchemaVersion int
	Format        gateway.Format
	Async         bool
}

// Native query parameters and where they apply, in the order they are
// checked.
var nativeParams = []struct {
	name          string
	batch, stream bool
}{
	{name: "schema_id", stream: true},
	{name: "schema_version", stream: true},
	{name: "format", stream: true},
	{name: "async", batch: true},
}

// parseProduceQuery parses q for a batch (stream=false) or an NDJSON
// stream. Parameters of the other mode are refused rather than ignored;
// parameters the endpoint does not know are left alone (proxies add
// their own).
func parseProduceQuery(q url.Values, stream bool) (produceQuery, *gateway.Error) {
	var out produceQuery
	bad := func(name, format string, args ...any) (produceQuery, *gateway.Error) {
		return produceQuery{}, &gateway.Error{Kind: gateway.KindBadRequest, Field: name,
			Message: fmt.Sprintf("query parameter %s: ", name) + fmt.Sprintf(format, args...)}
	}
	for _, where := range nativeParams {
		name := where.name
		vs, ok := q[name]
		if !ok {
			continue
		}
		if len(vs) > 1 {
			return bad(name, "given %d times", len(vs))
		}
		v := vs[0]
		if stream && !where.stream {
			return bad(name, "not supported for NDJSON streams (every record is answered once produced)")
		}
		if !stream && !where.batch {
			return bad(name, "read only for NDJSON streams; put %q in the JSON request body", name)
		}
		var err error
		switch name {
		case "schema_id":
			out.SchemaID, err = parseSchemaID(v)
		case "schema_version":
			out.SchemaVersion, err = parseSchemaVersion(v)
		case "format":
			out.Format, err = parseFormat(v)
		case "async":
			switch v {
			case "true":
				out.Async = true
			case "false":
			default:
				err = fmt.Errorf("want true or false, got %s", quoteParam(v))
			}
		}
		if err != nil {
			return bad(name, "%v", err)
		}
	}
	return out, nil
}

// parseSchemaID accepts a positive schema id (Confluent ids are positive
// int32s).
func parseSchemaID(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("want a positive integer schema id, got %s", quoteParam(s))
	}
	return int(n), nil
}

// parseSchemaVersion accepts a positive version, or -1 for the latest (as
// Confluent's registry does).
func parseSchemaVersion(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 || n < -1 || n > math.MaxInt32 {
		return 0, fmt.Errorf("want a positive version or -1 (latest), got %s", quoteParam(s))
	}
	if n == -1 {
		return 0, nil
	}
	return int(n), nil
}

// checkSchemaRef validates ids and versions taken from request bodies:
// 0 means "not given", -1 is the latest version; other negatives and
// values past int32 are errors (they once fell back to the latest schema).
func checkSchemaRef(what string, id, version int64) *gateway.Error {
	if id < 0 || id > math.MaxInt32 {
		return gateway.Errorf(gateway.KindBadRequest, "%s: want a positive integer schema id, got %d", what+"schema_id", id)
	}
	if version < -1 || version > math.MaxInt32 {
		return gateway.Errorf(gateway.KindBadRequest, "%s: want a positive version or -1 (latest), got %d", what+"schema_version", version)
	}
	return nil
}

// quoteParam quotes a producer-supplied value, cut to 64 bytes.
func quoteParam(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// validSubject accepts a registry subject name a producer may name: up to
// 512 bytes of printable text (the subject is sent to the registry).
func validSubject(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}
