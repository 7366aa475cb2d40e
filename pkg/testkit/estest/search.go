package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// search handles _search and _count over a comma list of names and patterns.
func (s *Server) search(expr, endpoint string, q url.Values, body []byte) (int, any) {
	start := time.Now()
	var req struct {
		Query map[string]json.RawMessage `json:"query"`
		Size  *int                       `json:"size"`
		From  int                        `json:"from"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return fail(http.StatusBadRequest, "parsing_exception", "failed to parse search request: "+err.Error())
		}
	}
	size := 10
	if req.Size != nil {
		size = *req.Size
	}
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail(http.StatusBadRequest, "illegal_argument_exception", fmt.Sprintf("Failed to parse int parameter [size] with value [%s]", v))
		}
		size = n
	}
	match, err := compileQuery(req.Query)
	if err != nil {
		return fail(http.StatusBadRequest, "parsing_exception", err.Error())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	found, missing := s.resolve(expr)
	if missing != "" {
		return indexNotFound(missing)
	}
	var hits []any
	for _, ix := range found {
		ids := make([]string, 0, len(ix.docs))
		for id := range ix.docs {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ix.docs[ids[i]].seqNo < ix.docs[ids[j]].seqNo })
		for _, id := range ids {
			d := ix.docs[id]
			var src map[string]any
			if decode(d.source, &src) == nil && match(src) {
				hits = append(hits, obj{"_index": ix.concrete(), "_id": id, "_score": 1.0, "_source": d.source})
			}
		}
	}
	shards := obj{"total": len(found), "successful": len(found), "skipped": 0, "failed": 0}
	if endpoint == "_count" {
		return http.StatusOK, obj{"count": len(hits), "_shards": shards}
	}
	total := len(hits)
	page := []any{}
	if req.From < total && size > 0 {
		page = hits[req.From:min(total, req.From+size)]
	}
	var maxScore any
	if total > 0 {
		maxScore = 1.0
	}
	return http.StatusOK, obj{
		"took": time.Since(start).Milliseconds(), "timed_out": false, "_shards": shards,
		"hits": obj{"total": obj{"value": total, "relation": "eq"}, "max_score": maxScore, "hits": page},
	}
}

// compileQuery supports match_all and term.
func compileQuery(q map[string]json.RawMessage) (func(map[string]any) bool, error) {
	all := func(map[string]any) bool { return true }
	if len(q) == 0 {
		return all, nil
	}
	if len(q) > 1 {
		return nil, fmt.Errorf("[query] malformed query, expected one query but found %d", len(q))
	}
	for name, raw := range q {
		switch name {
		case "match_all":
			return all, nil
		case "term":
			var t map[string]json.RawMessage
			if err := json.Unmarshal(raw, &t); err != nil || len(t) != 1 {
				return nil, fmt.Errorf("[term] query malformed, expected one field")
			}
			for field, v := range t {
				var wrapped struct {
					Value json.RawMessage `json:"value"`
				}
				if json.Unmarshal(v, &wrapped) == nil && wrapped.Value != nil {
					v = wrapped.Value
				}
				var want any
				d := json.NewDecoder(bytes.NewReader(v))
				d.UseNumber()
				if err := d.Decode(&want); err != nil {
					return nil, fmt.Errorf("[term] query malformed value: %w", err)
				}
				return func(src map[string]any) bool { return termMatch(src, field, want) }, nil
			}
		}
		return nil, fmt.Errorf("unknown query [%s] (estest supports match_all and term)", name)
	}
	return all, nil
}

// termMatch compares exact values; field.keyword falls back to field, as the
// default dynamic mapping adds a keyword subfield to strings.
func termMatch(src map[string]any, field string, want any) bool {
	flat := map[string][]any{}
	flattenDoc("", src, flat)
	vals, ok := flat[field]
	if !ok {
		vals = flat[strings.TrimSuffix(field, ".keyword")]
	}
	for _, v := range vals {
		if sameValue(v, want) {
			return true
		}
	}
	return false
}

func flattenDoc(prefix string, v any, out map[string][]any) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			flattenDoc(prefix+k+".", child, out)
		}
	case []any:
		for _, child := range v {
			flattenDoc(prefix, child, out)
		}
	default:
		key := strings.TrimSuffix(prefix, ".")
		out[key] = append(out[key], v)
	}
}

func sameValue(a, b any) bool {
	as, bs := fmt.Sprint(a), fmt.Sprint(b)
	if as == bs {
		return true
	}
	af, errA := strconv.ParseFloat(as, 64)
	bf, errB := strconv.ParseFloat(bs, 64)
	return errA == nil && errB == nil && af == bf
}

// getDoc handles GET /{index}/_doc/{id}.
func (s *Server) getDoc(name, id string) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.indices[name]
	if ix == nil {
		return indexNotFound(name)
	}
	d := ix.docs[id]
	if d == nil {
		return http.StatusNotFound, obj{"_index": ix.concrete(), "_id": id, "found": false}
	}
	return http.StatusOK, obj{"_index": ix.concrete(), "_id": id, "_version": d.version, "_seq_no": d.seqNo,
		"_primary_term": 1, "found": true, "_source": d.source}
}
