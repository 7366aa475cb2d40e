package estest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// index is an index or a data stream (then backing names its one backing
// index, which ES reports as _index).
type index struct {
	name     string
	uuid     string
	backing  string
	template string
	settings map[string]string // flattened, without the "index." prefix
	mappings json.RawMessage
	docs     map[string]*doc
	tombs    map[string]int64 // version of deleted ids
	seqNo    int64            // next sequence number
}

type doc struct {
	source         json.RawMessage
	version, seqNo int64
}

// concrete is the index name ES reports in _index.
func (ix *index) concrete() string {
	if ix.backing != "" {
		return ix.backing
	}
	return ix.name
}

type template struct {
	raw      json.RawMessage
	patterns []string
	priority int
	settings json.RawMessage
	mappings json.RawMessage
	isDS     bool
}

func parseTemplate(raw json.RawMessage) (*template, error) {
	var t struct {
		IndexPatterns json.RawMessage `json:"index_patterns"`
		Priority      int             `json:"priority"`
		Template      struct {
			Settings json.RawMessage `json:"settings"`
			Mappings json.RawMessage `json:"mappings"`
		} `json:"template"`
		DataStream json.RawMessage `json:"data_stream"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, err
	}
	out := &template{raw: raw, priority: t.Priority, settings: t.Template.Settings, mappings: t.Template.Mappings, isDS: len(t.DataStream) > 0}
	var one string
	if json.Unmarshal(t.IndexPatterns, &out.patterns) != nil && json.Unmarshal(t.IndexPatterns, &one) == nil {
		out.patterns = []string{one}
	}
	return out, nil
}

func newID() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func indexNotFound(name string) (int, any) {
	return http.StatusNotFound, errBody(Error{http.StatusNotFound, "index_not_found_exception", fmt.Sprintf("no such index [%s]", name)},
		obj{"index": name, "index_uuid": "_na_", "resource.type": "index_or_alias", "resource.id": name})
}

func fail(status int, typ, reason string) (int, any) {
	return status, errBody(Error{status, typ, reason}, nil)
}

func ack() (int, any) { return http.StatusOK, obj{"acknowledged": true} }

// validName applies ES's index name rules.
func validName(name string) *Error {
	bad := func(why string) *Error {
		return &Error{http.StatusBadRequest, "invalid_index_name_exception", fmt.Sprintf("Invalid index name [%s], %s", name, why)}
	}
	switch {
	case name == "":
		return bad("must not be empty")
	case name != strings.ToLower(name):
		return bad("must be lowercase")
	case strings.ContainsAny(name[:1], "_-+"):
		return bad("must not start with '_', '-', or '+'")
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`)
	}
	return nil
}

// glob matches ES index patterns, where only * is special.
func glob(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
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
	return name == ""
}

// resolve expands a comma list of names and patterns; missing is the first
// concrete name that does not exist. Wildcards that match nothing are fine,
// as with ES's default allow_no_indices.
func (s *Server) resolve(expr string) (found []*index, missing string) {
	seen := map[string]bool{}
	for _, part := range strings.Split(expr, ",") {
		if part == "_all" {
			part = "*"
		}
		if !strings.Contains(part, "*") {
			ix := s.indices[part]
			if ix == nil {
				return nil, part
			}
			if !seen[part] {
				seen[part] = true
				found = append(found, ix)
			}
			continue
		}
		for name, ix := range s.indices {
			hiddenOK := strings.HasPrefix(part, ".")
			if !seen[name] && glob(part, name) && (hiddenOK || !strings.HasPrefix(name, ".")) {
				seen[name] = true
				found = append(found, ix)
			}
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].name < found[j].name })
	return found, ""
}

// matchTemplate is the highest-priority composable template for name.
func (s *Server) matchTemplate(name string) (string, *template) {
	var bestName string
	var best *template
	for tn, raw := range s.templates {
		t, err := parseTemplate(raw)
		if err != nil {
			continue
		}
		for _, p := range t.patterns {
			if glob(p, name) && (best == nil || t.priority > best.priority) {
				bestName, best = tn, t
			}
		}
	}
	return bestName, best
}

// create adds an index (or, with a data stream template, a data stream);
// settings and mappings default to the matching template's.
func (s *Server) create(name string, settings, mappings json.RawMessage, asDataStream bool) *index {
	tn, t := s.matchTemplate(name)
	ix := &index{name: name, uuid: newID(), template: tn, docs: map[string]*doc{}, tombs: map[string]int64{}}
	if t != nil {
		if settings == nil {
			settings = t.settings
		}
		if mappings == nil {
			mappings = t.mappings
		}
	}
	if asDataStream {
		ix.backing = fmt.Sprintf(".ds-%s-%s-000001", name, time.Now().UTC().Format("2006.01.02"))
	}
	ix.settings = map[string]string{
		"number_of_shards": "1", "number_of_replicas": "1", "uuid": ix.uuid, "provided_name": ix.concrete(),
		"creation_date": strconv.FormatInt(time.Now().UnixMilli(), 10), "version.created": "8512000",
	}
	var m map[string]any
	if json.Unmarshal(settings, &m) == nil {
		flatten("", m, ix.settings)
	}
	ix.mappings = mappings
	if ix.mappings == nil {
		ix.mappings = json.RawMessage(`{}`)
	}
	s.indices[name] = ix
	return ix
}

func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := strings.TrimPrefix(prefix+k, "index.")
		switch v := v.(type) {
		case map[string]any:
			flatten(key+".", v, out)
		case string:
			out[key] = v
		default:
			b, _ := json.Marshal(v)
			out[key] = string(b)
		}
	}
}

func unflatten(flat map[string]string) obj {
	out := obj{}
	for k, v := range flat {
		cur := out
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(obj)
			if !ok {
				next = obj{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	return out
}

// indexAdmin handles PUT, HEAD, GET and DELETE /{index}.
func (s *Server) indexAdmin(method, name string, body []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case http.MethodPut:
		if e := validName(name); e != nil {
			return e.Status, errBody(*e, obj{"index": name})
		}
		if ix := s.indices[name]; ix != nil {
			return http.StatusBadRequest, errBody(Error{http.StatusBadRequest, "resource_already_exists_exception",
				fmt.Sprintf("index [%s/%s] already exists", ix.concrete(), ix.uuid)}, obj{"index": name, "index_uuid": ix.uuid})
		}
		var req struct {
			Settings json.RawMessage `json:"settings"`
			Mappings json.RawMessage `json:"mappings"`
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				return fail(http.StatusBadRequest, "parse_exception", "failed to parse create index request: "+err.Error())
			}
		}
		s.create(name, req.Settings, req.Mappings, false)
		return http.StatusOK, obj{"acknowledged": true, "shards_acknowledged": true, "index": name}
	case http.MethodHead, http.MethodGet:
		found, missing := s.resolve(name)
		if missing != "" {
			return indexNotFound(missing)
		}
		out := obj{}
		for _, ix := range found {
			entry := obj{"aliases": obj{}, "mappings": ix.mappings, "settings": obj{"index": unflatten(ix.settings)}}
			if ix.backing != "" {
				entry["data_stream"] = ix.name
			}
			out[ix.concrete()] = entry
		}
		if method == http.MethodHead && len(found) == 0 {
			return http.StatusNotFound, nil
		}
		return http.StatusOK, out
	default: // DELETE
		if strings.Contains(name, "*") || name == "_all" {
			return fail(http.StatusBadRequest, "illegal_argument_exception", "Wildcard expressions or all indices are not allowed")
		}
		found, missing := s.resolve(name)
		if missing != "" {
			return indexNotFound(missing)
		}
		for _, ix := range found {
			if ix.backing != "" {
				return fail(http.StatusBadRequest, "illegal_argument_exception",
					fmt.Sprintf("The provided expression [%s] matches a data stream, specify the corresponding concrete indices instead.", ix.name))
			}
		}
		for _, ix := range found {
			delete(s.indices, ix.name)
		}
		return ack()
	}
}

// indexTemplate handles /_index_template[/{name}].
func (s *Server) indexTemplate(method string, rest []string, body []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := "*"
	if len(rest) == 1 {
		name = rest[0]
	}
	switch method {
	case http.MethodPut, http.MethodPost:
		t, err := parseTemplate(body)
		if err != nil {
			return fail(http.StatusBadRequest, "x_content_parse_exception", "failed to parse index template: "+err.Error())
		}
		if len(t.patterns) == 0 {
			return fail(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
		}
		s.templates[name] = append(json.RawMessage(nil), body...)
		return ack()
	case http.MethodGet, http.MethodHead:
		list := []any{}
		for tn, raw := range s.templates {
			if glob(name, tn) {
				list = append(list, obj{"name": tn, "index_template": raw})
			}
		}
		if len(list) == 0 && (!strings.Contains(name, "*") || method == http.MethodHead) {
			return fail(http.StatusNotFound, "resource_not_found_exception", fmt.Sprintf("index template matching [%s] not found", name))
		}
		return http.StatusOK, obj{"index_templates": list}
	case http.MethodDelete:
		if _, ok := s.templates[name]; !ok {
			return fail(http.StatusNotFound, "resource_not_found_exception", fmt.Sprintf("index_template [%s] missing", name))
		}
		delete(s.templates, name)
		return ack()
	}
	return fail(http.StatusMethodNotAllowed, "illegal_argument_exception", "unsupported method "+method)
}

// ilmPolicy handles /_ilm/policy[/{name}].
func (s *Server) ilmPolicy(method string, rest []string, body []byte) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := ""
	if len(rest) == 1 {
		name = rest[0]
	}
	switch {
	case method == http.MethodPut && name != "":
		var req struct {
			Policy json.RawMessage `json:"policy"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Policy) == 0 {
			return fail(http.StatusBadRequest, "x_content_parse_exception", "[put_lifecycle_request] policy is required")
		}
		s.policies[name] = policy{body: req.Policy, version: s.policies[name].version + 1, modified: time.Now().UTC()}
		return ack()
	case method == http.MethodGet:
		out := obj{}
		for pn, p := range s.policies {
			if name == "" || pn == name {
				out[pn] = obj{"version": p.version, "modified_date": p.modified.Format(time.RFC3339Nano), "policy": p.body,
					"in_use_by": obj{"indices": []string{}, "data_streams": []string{}, "composable_templates": []string{}}}
			}
		}
		if name != "" && len(out) == 0 {
			return fail(http.StatusNotFound, "resource_not_found_exception", "Lifecycle policy not found: "+name)
		}
		return http.StatusOK, out
	case method == http.MethodDelete && name != "":
		if _, ok := s.policies[name]; !ok {
			return fail(http.StatusNotFound, "resource_not_found_exception", "Lifecycle policy not found: "+name)
		}
		delete(s.policies, name)
		return ack()
	}
	return fail(http.StatusMethodNotAllowed, "illegal_argument_exception", "unsupported method "+method)
}

// dataStream handles /_data_stream[/{name}].
func (s *Server) dataStream(method string, rest []string) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := "*"
	if len(rest) == 1 {
		name = rest[0]
	}
	switch method {
	case http.MethodPut:
		if e := validName(name); e != nil {
			return e.Status, errBody(*e, nil)
		}
		if s.indices[name] != nil {
			return fail(http.StatusBadRequest, "resource_already_exists_exception", fmt.Sprintf("data_stream [%s] already exists", name))
		}
		if _, t := s.matchTemplate(name); t == nil || !t.isDS {
			return fail(http.StatusBadRequest, "illegal_argument_exception", fmt.Sprintf("no matching index template found for data stream [%s]", name))
		}
		s.create(name, nil, nil, true)
		return ack()
	case http.MethodGet:
		found, missing := s.resolve(name)
		if missing != "" {
			return indexNotFound(missing)
		}
		list := []any{}
		for _, ix := range found {
			if ix.backing != "" {
				list = append(list, obj{"name": ix.name, "timestamp_field": obj{"name": "@timestamp"}, "generation": 1, "status": "GREEN",
					"template": ix.template, "hidden": false, "system": false,
					"indices": []any{obj{"index_name": ix.backing, "index_uuid": ix.uuid}}})
			}
		}
		return http.StatusOK, obj{"data_streams": list}
	case http.MethodDelete:
		ix := s.indices[name]
		if ix == nil || ix.backing == "" {
			return indexNotFound(name)
		}
		delete(s.indices, name)
		return ack()
	}
	return fail(http.StatusMethodNotAllowed, "illegal_argument_exception", "unsupported method "+method)
}

// refresh accepts the refresh; writes are already visible.
func (s *Server) refresh(expr string) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found, missing := s.resolve(expr)
	if missing != "" {
		return indexNotFound(missing)
	}
	n := len(found)
	return http.StatusOK, obj{"_shards": obj{"total": 2 * n, "successful": n, "failed": 0}}
}
