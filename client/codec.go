package client

import (
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/codec"
)

// Codec returns the data and failure converters that seal payloads with
// the keys the worker uses (docs: README, Secrets), for client.Options'
// DataConverter and FailureConverter: keyFile, else the environment's
// STAGECRAFT_CODEC_KEY_FILE or STAGECRAFT_CODEC_KEYS. Both are nil when
// no key is configured; a client must use the same keys as the workers,
// or its rollouts' inputs cannot be read by them.
func Codec(keyFile string) (converter.DataConverter, converter.FailureConverter, error) {
	c, err := codec.Load(keyFile)
	if err != nil || c == nil {
		return nil, nil, err
	}
	dc := c.DataConverter()
	return dc, codec.FailureConverter(dc), nil
}
