// Package codec encrypts every payload Stagecraft's processes send to
// Temporal (workflow and activity inputs and results, heartbeats, queries,
// updates, signals, memos, and failures' messages and stack traces) with
// AES-256-GCM, so what the server stores, and what the Web UI or the
// temporal CLI show without the codec, is ciphertext. Search attributes are
// not payloads the server can do without, so they stay plain: nothing
// secret goes into them.
//
// Keys have IDs, and each payload names the key that sealed it, so keys
// rotate: the first key seals, every key listed opens. Payloads written
// before the codec was turned on (or by a process without it) pass through
// as they are.
//
// Serve reads the same keys and answers Temporal's remote codec protocol
// (POST /encode, /decode), for the Web UI (--ui-codec-endpoint) and the
// temporal CLI (--codec-endpoint, --codec-auth).
package codec

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	Encoding    = "binary/encrypted"
	MetadataKey = "encryption-key-id"
)

// EnvKeys holds keys as KEYID=BASE64 entries, comma-separated, the first
// one sealing; EnvKeyFile names a file of them, one per line.
const (
	EnvKeys    = "STAGECRAFT_CODEC_KEYS"
	EnvKeyFile = "STAGECRAFT_CODEC_KEY_FILE"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Codec seals payloads with its first key and opens them with any of its
// keys. It implements converter.PayloadCodec.
type Codec struct {
	sealID string
	aeads  map[string]cipher.AEAD
}

// Key is one key and its ID.
type Key struct {
	ID     string
	Secret []byte
}

// New returns a codec sealing with keys[0] and opening with any of keys.
func New(keys []Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no key")
	}
	c := &Codec{sealID: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if !keyID.MatchString(k.ID) {
			return nil, fmt.Errorf("codec: key ID %q: want 1 to 64 of A-Z a-z 0-9 . _ -", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: key %s: %d bytes, want %d (e.g. openssl rand -base64 32)", k.ID, len(k.Secret), KeySize)
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: key ID %s listed twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
	}
	return c, nil
}

// SealingKey is the ID of the key that seals.
func (c *Codec) SealingKey() string { return c.sealID }

// Encode seals each payload whole (its metadata and data) into a new one.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.sealID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: encode: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: encode: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKey:                []byte(c.sealID),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.sealID)),
		}
	}
	return out, nil
}

// Decode opens each sealed payload; others pass through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKey])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload sealed with key %q, which this process does not have", id)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, fmt.Errorf("codec: payload sealed with key %q is truncated", id)
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: payload sealed with key %q does not open: altered, or another key under that ID", id)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, fmt.Errorf("codec: payload sealed with key %q: %w", id, err)
		}
		out[i] = &orig
	}
	return out, nil
}

// DataConverter is the default data converter with payloads sealed by c.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter seals failures' messages and stack traces too (an error
// may quote a spec's values), as payloads of dc.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
}

// ParseKeys reads keys as KEYID=BASE64 entries separated by commas or new
// lines; blank lines and lines starting with # are skipped. what names the
// source in errors (never a key).
func ParseKeys(text, what string) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, ",", "\n")))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("codec keys (%s), entry %d: want KEYID=BASE64", what, n)
		}
		secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("codec keys (%s), key %s: not base64", what, strings.TrimSpace(id))
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("codec keys (%s): none", what)
	}
	return keys, nil
}

// Load returns the codec configured by a key file (file, else the
// environment's EnvKeyFile) or the environment's EnvKeys; nil, nil when
// none is configured.
func Load(file string) (*Codec, error) {
	file = strings.TrimSpace(cmp.Or(file, os.Getenv(EnvKeyFile)))
	var keys []Key
	var err error
	switch env := os.Getenv(EnvKeys); {
	case file != "":
		var b []byte
		if b, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("codec keys: %w", err)
		}
		keys, err = ParseKeys(string(bytes.TrimSpace(b)), file)
	case env != "":
		keys, err = ParseKeys(env, "$"+EnvKeys)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return New(keys)
}
