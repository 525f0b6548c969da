package control

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// WithDataConverter returns c carrying dc, the data converter it was
// dialled with, so what control decodes itself (memos, heartbeat details)
// is decoded as the client's own calls are: a client sealing payloads with
// the codec (internal/codec) reads them back. A nil dc leaves c as it is.
func WithDataConverter(c client.Client, dc converter.DataConverter) client.Client {
	if dc == nil {
		return c
	}
	return &convertingClient{Client: c, dc: dc}
}

type convertingClient struct {
	client.Client
	dc converter.DataConverter
}

// dataConverter is c's data converter: the one WithDataConverter gave it,
// else the default. Search attributes are never sealed: they are always
// decoded with the default.
func dataConverter(c client.Client) converter.DataConverter {
	if cc, ok := c.(*convertingClient); ok {
		return cc.dc
	}
	return converter.GetDefaultDataConverter()
}
