package sink

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

// The outcomes of a bulk item that did not succeed outright.
const (
	outcomeDeadLetter = iota // permanent for this record: to the DLQ
	outcomeDuplicate         // 409 version_conflict_engine_exception: the index has this or a newer version
	outcomeDone              // 404 on a delete (no such document or index): nothing to delete, done
	outcomeRetry             // 429 or 5xx for the item: retry with backoff
	outcomeRequest           // the whole request failed (network, 429, 5xx): pause and retry
	outcomeIsolate           // the whole request was refused (other 4xx): send its records one by one
)

// VersionConflict is the only error type of a 409 that means "already
// done": a create on an id that exists (data streams, replays) or an
// external version not newer than the stored one (key mode).
const VersionConflict = "version_conflict_engine_exception"

type outcome struct {
	kind   int
	metric string // reason label
	reason string // for logs and the sluice-error header
}

// outcomeOf classifies a failed bulk item: res is the item's answer, err
// the whole request's error (then res is empty).
func outcomeOf(action document.Action, res esutil.BulkIndexerResponseItem, err error) outcome {
	if err != nil {
		st := requestStatus(err)
		if st >= 400 && st < 500 && st != http.StatusTooManyRequests {
			return outcome{kind: outcomeIsolate, metric: "request_refused", reason: fmt.Sprintf("bulk request refused: %v", err)}
		}
		return outcome{kind: outcomeRequest, metric: "request", reason: err.Error()}
	}
	reason := itemReason(res)
	switch {
	case res.Status == http.StatusConflict && res.Error.Type == VersionConflict:
		return outcome{kind: outcomeDuplicate}
	case res.Status == http.StatusNotFound && action == document.ActionDelete && (res.Error.Type == "" || res.Error.Type == "index_not_found_exception"):
		return outcome{kind: outcomeDone} // nothing to delete
	case res.Status == http.StatusTooManyRequests:
		return outcome{kind: outcomeRetry, metric: "rejected", reason: reason}
	case res.Status >= 500:
		return outcome{kind: outcomeRetry, metric: "server_error", reason: reason}
	}
	typ := res.Error.Type
	if typ == "" {
		typ = http.StatusText(res.Status)
		if typ == "" {
			typ = "status_" + strconv.Itoa(res.Status)
		}
	}
	return outcome{kind: outcomeDeadLetter, metric: typ, reason: reason}
}

// itemReason renders an item error as Elasticsearch answered it:
// "<status> <type>: <reason> (caused by <type>: <reason>)".
func itemReason(res esutil.BulkIndexerResponseItem) string {
	r := fmt.Sprintf("%d %s: %s", res.Status, res.Error.Type, res.Error.Reason)
	if res.Error.Cause.Reason != "" {
		r += " (caused by " + res.Error.Cause.Type + ": " + res.Error.Cause.Reason + ")"
	}
	return r
}

// requestStatus extracts the HTTP status from esutil's error for a failed
// bulk request ("flush: [413 Request Entity Too Large] ..."); 0 when the
// request got no answer (connection error, timeout).
func requestStatus(err error) int {
	if err == nil {
		return 0
	}
	s := err.Error()
	i := strings.Index(s, "flush: [")
	if i < 0 {
		return 0
	}
	s = s[i+len("flush: ["):]
	j := strings.IndexAny(s, " ]")
	if j <= 0 {
		return 0
	}
	st, perr := strconv.Atoi(s[:j])
	if perr != nil || st < 100 || st > 599 {
		return 0
	}
	return st
}
