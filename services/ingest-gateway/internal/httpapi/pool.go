package httpapi

import (
	"sync"

	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// Per-request buffers are recycled: a 1000-record request otherwise
// allocates about 2 KiB per record (body, record table, response), and
// the garbage collector's share of a busy gateway's CPU grows with it.
// Buffers over maxPooled are left to the collector so one huge request
// does not pin its memory.
const maxPooled = 4 << 20

var (
	bodyPool    sync.Pool // *[]byte
	recordsPool sync.Pool // *recordTable
)

type recordTable struct {
	recs []gateway.Record
	errs []*gateway.Error
}

func getBuf(n int64) []byte {
	if p, ok := bodyPool.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, 512))
}

func putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooled {
		return
	}
	b = b[:0]
	bodyPool.Put(&b)
}

func getTable() *recordTable {
	if t, ok := recordsPool.Get().(*recordTable); ok {
		return t
	}
	return &recordTable{}
}

func putTable(t *recordTable) {
	if t == nil || cap(t.recs) > 100_000 {
		return
	}
	clear(t.recs[:cap(t.recs)]) // drop references into the body
	clear(t.errs[:cap(t.errs)])
	t.recs, t.errs = t.recs[:0], t.errs[:0]
	recordsPool.Put(t)
}
