package gateway

// tally counts a batch's outcomes so metrics are updated once per batch,
// not once per record.
type tally struct {
	accepted, acceptedBytes int
	dlq, dlqBytes           int
	rejected                int
	reasons                 map[string]int
}

// count records one message's outcome; rerr is its validation error, if any.
func (t *tally) count(s *slot, rerr *Error) {
	switch {
	case s != nil && s.err != nil:
		t.reject(kafkaError(s.err).Kind.reason())
	case s != nil && s.dlq:
		t.dlq++
		t.dlqBytes += s.size
		if rerr != nil {
			t.reason(rerr.Kind.reason())
		}
	case s != nil:
		t.accepted++
		t.acceptedBytes += s.size
	}
}

func (t *tally) reject(reason string) {
	t.rejected++
	t.reason(reason)
}

func (t *tally) reason(r string) {
	if t.reasons == nil {
		t.reasons = map[string]int{}
	}
	t.reasons[r]++
}

func (e *Engine) flush(topic string, t *tally) {
	if t.accepted == 0 && t.dlq == 0 && t.rejected == 0 && len(t.reasons) == 0 {
		return
	}
	m := e.metrics
	topic = m.Topic(topic)
	if t.accepted > 0 {
		m.Records.WithLabelValues(topic, "accepted").Add(float64(t.accepted))
		m.Bytes.WithLabelValues(topic, "accepted").Add(float64(t.acceptedBytes))
	}
	if t.dlq > 0 {
		m.Records.WithLabelValues(topic, "dead_lettered").Add(float64(t.dlq))
		m.Bytes.WithLabelValues(topic, "dead_lettered").Add(float64(t.dlqBytes))
	}
	if t.rejected > 0 {
		m.Records.WithLabelValues(topic, "rejected").Add(float64(t.rejected))
	}
	for r, n := range t.reasons {
		m.RecordErrors.WithLabelValues(topic, r).Add(float64(n))
	}
}
