package avro

import (
	"testing"

	"github.com/linkedin/goavro/v2"
)

// A 6-byte array claiming ~1 billion items must fail fast, not allocate.
func TestLimitBlocksRejectsHugeBlockCount(t *testing.T) {
	c, err := goavro.NewCodec(`{"type":"array","items":"null"}`)
	if err != nil {
		t.Fatal(err)
	}
	hostile := []byte{0xfe, 0xff, 0xff, 0xff, 0x07, 0x00} // zigzag count 1073741823, then end
	if _, _, err := c.NativeFromBinary(hostile); err == nil {
		t.Fatal("decoding a block of 1073741823 items succeeded; the limit is not in force")
	}
}
