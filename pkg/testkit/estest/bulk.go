package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxIDBytes is Elasticsearch's limit on _id (UTF-8 bytes); a longer id
// fails the whole bulk request's validation, as in ES.
const maxIDBytes = 512

// action is one parsed bulk action.
type action struct {
	op, index, id string
	version       *int64
	versionType   string
	ifSeqNo       *int64
	source        json.RawMessage // nil for delete
	update        *updateBody
}

// MetadataFields are Elasticsearch 8's metadata fields: a document with one
// of them at its top level is refused item by item (document_parsing_exception).
var MetadataFields = map[string]bool{
	"_id": true, "_index": true, "_source": true, "_routing": true, "_field_names": true, "_ignored": true,
	"_seq_no": true, "_primary_term": true, "_version": true, "_doc_count": true, "_tier": true,
	"_data_stream_timestamp": true, "_nested_path": true, "_feature": true, "_type": true, "_ignored_source": true,
}

type updateBody struct {
	Doc         json.RawMessage `json:"doc"`
	Upsert      json.RawMessage `json:"upsert"`
	DocAsUpsert bool            `json:"doc_as_upsert"`
	Script      json.RawMessage `json:"script"`
}

// bulk handles POST /_bulk and /{index}/_bulk: one item per action, in order.
func (s *Server) bulk(defaultIndex string, body []byte) (int, any) {
	start := time.Now()
	actions, e := parseBulk(defaultIndex, body)
	if e != nil {
		return e.Status, errBody(*e, nil)
	}

	// The hook runs without the lock so it may call Server methods.
	s.mu.Lock()
	hook := s.itemFailure
	s.mu.Unlock()
	injected := make([]*Error, len(actions))
	if hook != nil {
		for i, a := range actions {
			injected[i] = hook(a.op, a.index, a.id, a.source)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	items := make([]any, len(actions))
	anyFailed := false
	for i, a := range actions {
		res := s.apply(a, injected[i])
		if _, failed := res["error"]; failed {
			anyFailed = true
		}
		items[i] = obj{a.op: res}
	}
	return http.StatusOK, obj{"took": time.Since(start).Milliseconds(), "errors": anyFailed, "items": items}
}

// parseBulk reads the NDJSON body. Errors are request-level, as in ES.
func parseBulk(defaultIndex string, body []byte) ([]action, *Error) {
	invalid := func(typ, reason string) *Error { return &Error{http.StatusBadRequest, typ, reason} }
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("action_request_validation_exception", "Validation Failed: 1: no requests added;")
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		return nil, invalid("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
	}
	lines := bytes.Split(body, []byte("\n"))
	var actions []action
	var problems []string
	for n := 0; n < len(lines); n++ {
		line := bytes.TrimSpace(lines[n])
		if len(line) == 0 {
			continue
		}
		var head map[string]struct {
			Index       string `json:"_index"`
			ID          string `json:"_id"`
			Version     *int64 `json:"version"`
			VersionType string `json:"version_type"`
			IfSeqNo     *int64 `json:"if_seq_no"`
			OpType      string `json:"op_type"`
		}
		if err := json.Unmarshal(line, &head); err != nil || len(head) != 1 {
			return nil, invalid("illegal_argument_exception", fmt.Sprintf("Malformed action/metadata line [%d], expected START_OBJECT with one field", n+1))
		}
		var a action
		for op, m := range head {
			a = action{op: op, index: m.Index, id: m.ID, version: m.Version, versionType: m.VersionType, ifSeqNo: m.IfSeqNo}
			if op == "index" && m.OpType == "create" {
				a.op = "create"
			}
		}
		switch a.op {
		case "index", "create", "update", "delete":
		default:
			return nil, invalid("illegal_argument_exception", fmt.Sprintf("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", n+1, a.op))
		}
		if a.index == "" {
			a.index = defaultIndex
		}
		if a.index == "" {
			problems = append(problems, "index is missing")
		}
		if a.id == "" && (a.op == "update" || a.op == "delete") {
			problems = append(problems, "id is missing")
		}
		if a.id == "" {
			a.id = newID()
		}
		external := a.versionType == "external" || a.versionType == "external_gte"
		switch {
		case external && a.op == "create":
			problems = append(problems, "create operations only support internal versioning. use index instead")
		case external && a.op == "update":
			problems = append(problems, fmt.Sprintf("version type [%s] is not supported by the update API", a.versionType))
		case external && a.version == nil:
			problems = append(problems, fmt.Sprintf("an explicit version is required when using version_type [%s]", a.versionType))
		case !external && a.version != nil:
			problems = append(problems, "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead")
		case external && *a.version < 0:
			problems = append(problems, fmt.Sprintf("illegal version value [%d] for version type [%s]", *a.version, strings.ToUpper(a.versionType)))
		}
		if len(a.id) > maxIDBytes {
			problems = append(problems, fmt.Sprintf("id [%s] is too long, must be no longer than %d bytes but was: %d", a.id, maxIDBytes, len(a.id)))
		}
		if a.op != "delete" {
			n++
			if n >= len(lines) || len(bytes.TrimSpace(lines[n])) == 0 {
				problems = append(problems, "source is missing")
				actions = append(actions, a)
				continue
			}
			a.source = append(json.RawMessage(nil), bytes.TrimSpace(lines[n])...)
		}
		if a.op == "update" {
			a.update = &updateBody{}
			if err := json.Unmarshal(a.source, a.update); err != nil {
				return nil, invalid("x_content_parse_exception", fmt.Sprintf("[%d:1] [UpdateRequest] failed to parse: %v", n+1, err))
			}
			if a.update.Doc == nil && a.update.Script == nil {
				problems = append(problems, "script or doc is missing")
			}
		}
		actions = append(actions, a)
	}
	if len(problems) > 0 {
		var b strings.Builder
		b.WriteString("Validation Failed: ")
		for i, p := range problems {
			fmt.Fprintf(&b, "%d: %s;", i+1, p)
		}
		return nil, invalid("action_request_validation_exception", b.String())
	}
	return actions, nil
}

// apply runs one action with s.mu held and returns its item body.
func (s *Server) apply(a action, injected *Error) obj {
	item := obj{"_index": a.index, "_id": a.id}
	failItem := func(e Error, ix *index) obj {
		item["status"] = e.Status
		errObj := obj{"type": e.Type, "reason": e.Reason, "index": a.index}
		if ix != nil {
			errObj["index"], errObj["index_uuid"], errObj["shard"] = ix.concrete(), ix.uuid, "0"
		}
		item["error"] = errObj
		return item
	}

	ix := s.indices[a.index]
	if ix == nil { // auto-create, as action.auto_create_index=true does
		if e := validName(a.index); e != nil {
			return failItem(*e, nil)
		}
		_, t := s.matchTemplate(a.index)
		ix = s.create(a.index, nil, nil, t != nil && t.isDS)
	}
	item["_index"] = ix.concrete()
	if injected != nil {
		return failItem(*injected, ix)
	}

	var src map[string]any
	if a.op == "index" || a.op == "create" {
		if err := decode(a.source, &src); err != nil {
			return failItem(Error{http.StatusBadRequest, "document_parsing_exception", "[1:1] failed to parse: " + err.Error()}, ix)
		}
		for name := range src {
			if MetadataFields[name] {
				return failItem(Error{http.StatusBadRequest, "document_parsing_exception",
					fmt.Sprintf("[1:2] Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", name)}, ix)
			}
		}
	}
	if ix.backing != "" {
		if a.op != "create" {
			return failItem(Error{http.StatusBadRequest, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams"}, ix)
		}
		if _, ok := src["@timestamp"]; !ok {
			return failItem(Error{http.StatusBadRequest, "document_parsing_exception", "failed to parse: data stream timestamp field [@timestamp] is missing"}, ix)
		}
	}

	cur := ix.docs[a.id]
	curVer, seen := ix.tombs[a.id]
	if cur != nil {
		curVer, seen = cur.version, true
	}
	conflict := func(reason string) obj {
		return failItem(Error{http.StatusConflict, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, %s", a.id, reason)}, ix)
	}
	if a.ifSeqNo != nil {
		if cur == nil {
			return conflict(fmt.Sprintf("required seqNo [%d], primary term [1] but no document was found", *a.ifSeqNo))
		}
		if cur.seqNo != *a.ifSeqNo {
			return conflict(fmt.Sprintf("required seqNo [%d], primary term [1]. current document has seqNo [%d] and primary term [1]", *a.ifSeqNo, cur.seqNo))
		}
	}
	newVer := curVer + 1
	if a.versionType == "external" || a.versionType == "external_gte" {
		v := *a.version
		if seen && a.versionType == "external" && curVer >= v {
			return conflict(fmt.Sprintf("current version [%d] is higher or equal to the one provided [%d]", curVer, v))
		}
		if seen && a.versionType == "external_gte" && curVer > v {
			return conflict(fmt.Sprintf("current version [%d] is higher than the one provided [%d]", curVer, v))
		}
		newVer = v
	}

	done := func(result string, status int, d *doc) obj {
		item["result"], item["status"], item["_primary_term"] = result, status, 1
		item["_version"], item["_seq_no"] = d.version, d.seqNo
		item["_shards"] = obj{"total": 2, "successful": 1, "failed": 0}
		return item
	}
	write := func(source json.RawMessage) *doc {
		d := &doc{source: source, version: newVer, seqNo: ix.seqNo}
		ix.seqNo++
		ix.docs[a.id] = d
		delete(ix.tombs, a.id)
		return d
	}
	created := func() (string, int) {
		if cur == nil {
			return "created", http.StatusCreated
		}
		return "updated", http.StatusOK
	}

	switch a.op {
	case "create":
		if cur != nil {
			return conflict(fmt.Sprintf("document already exists (current version [%d])", cur.version))
		}
		return done("created", http.StatusCreated, write(a.source))
	case "index":
		result, status := created()
		return done(result, status, write(a.source))
	case "delete":
		d := &doc{version: newVer, seqNo: ix.seqNo}
		ix.seqNo++
		delete(ix.docs, a.id)
		ix.tombs[a.id] = newVer
		if cur == nil {
			return done("not_found", http.StatusNotFound, d)
		}
		return done("deleted", http.StatusOK, d)
	}

	// update
	u := a.update
	if u.Script != nil {
		return failItem(Error{http.StatusBadRequest, "illegal_argument_exception", "estest: scripted updates are not supported"}, ix)
	}
	if cur == nil {
		switch {
		case u.DocAsUpsert:
			return done("created", http.StatusCreated, write(u.Doc))
		case u.Upsert != nil:
			return done("created", http.StatusCreated, write(u.Upsert))
		}
		return failItem(Error{http.StatusNotFound, "document_missing_exception", fmt.Sprintf("[%s]: document missing", a.id)}, ix)
	}
	var old, patch map[string]any
	if err := decode(cur.source, &old); err != nil {
		return failItem(Error{http.StatusBadRequest, "document_parsing_exception", "stored source is not an object"}, ix)
	}
	if err := decode(u.Doc, &patch); err != nil {
		return failItem(Error{http.StatusBadRequest, "document_parsing_exception", "[1:1] failed to parse: " + err.Error()}, ix)
	}
	before, _ := json.Marshal(old)
	merge(old, patch)
	after, _ := json.Marshal(old)
	if bytes.Equal(before, after) {
		item["_shards"] = obj{"total": 0, "successful": 0, "failed": 0}
		item["result"], item["status"], item["_version"], item["_seq_no"], item["_primary_term"] = "noop", http.StatusOK, cur.version, cur.seqNo, 1
		return item
	}
	return done("updated", http.StatusOK, write(after))
}

// decode parses a JSON object keeping numbers exact.
func decode(raw json.RawMessage, into *map[string]any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(into); err != nil {
		return err
	}
	if *into == nil {
		return fmt.Errorf("document is not a JSON object")
	}
	return nil
}

// merge deep-merges src into dst, as a partial-document update does.
func merge(dst, src map[string]any) {
	for k, v := range src {
		sv, sok := v.(map[string]any)
		dv, dok := dst[k].(map[string]any)
		if sok && dok {
			merge(dv, sv)
			continue
		}
		dst[k] = v
	}
}
