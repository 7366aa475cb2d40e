package avro

import (
	"os"
	"testing"
)

// TestMain lowers goavro's block limits once, before any test runs, as
// every service does first thing in main: a parallel test calling
// LimitBlocks while another decodes would race on goavro's globals.
func TestMain(m *testing.M) {
	LimitBlocks()
	os.Exit(m.Run())
}
