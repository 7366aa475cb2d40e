package avro

import "github.com/linkedin/goavro/v2"

// Block limits applied by LimitBlocks. A Kafka record (1 MiB by default,
// rarely more than a few) cannot legitimately hold more items or bytes in
// one Avro array/map block than this.
const (
	MaxBlockCount = 1 << 20
	MaxBlockSize  = 64 << 20
)

// LimitBlocks lowers goavro's process-wide block limits, which default to
// MaxInt32: with them a few hostile bytes make goavro pre-allocate a
// gigantic slice or map while decoding untrusted data. Every service that
// decodes Avro from Kafka or from producers calls it first thing in main.
func LimitBlocks() {
	goavro.MaxBlockCount, goavro.MaxBlockSize = MaxBlockCount, MaxBlockSize
}
