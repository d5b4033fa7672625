package reactor

import (
	"encoding"
	"encoding/json"
	"fmt"
)

// Codec turns requests, replies and service state into bytes and back. The
// journal, checkpoints and the network carry these bytes; in-process calls
// never encode.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec. A value that implements
// encoding.BinaryMarshaler / BinaryUnmarshaler is encoded with those methods
// instead, which is how a service opts into a faster or more compact format.
type JSONCodec struct{}

// Marshal encodes v.
func (JSONCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(encoding.BinaryMarshaler); ok {
		return m.MarshalBinary()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes data into v, which must be a pointer.
func (JSONCodec) Unmarshal(data []byte, v any) error {
	if u, ok := v.(encoding.BinaryUnmarshaler); ok {
		return u.UnmarshalBinary(data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reactor: decode %T: %w", v, err)
	}
	return nil
}
