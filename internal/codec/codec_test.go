package codec

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

func key(id string, b byte) Key { return Key{ID: id, Secret: bytes.Repeat([]byte{b}, KeySize)} }

func mustNew(t *testing.T, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const planted = "planted-secret-4f1c"

func TestSealedPayloadsHideTheValueAndOpen(t *testing.T) {
	c := mustNew(t, key("k1", 1))
	dc := c.DataConverter()
	p, err := dc.ToPayload(map[string]string{"DB_PASSWORD": planted})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := protojsonMarshal(p)
	if bytes.Contains(raw, []byte(planted)) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(planted))[:12])) {
		t.Fatalf("sealed payload shows the value: %s", raw)
	}
	if got := string(p.Metadata[MetadataKey]); got != "k1" {
		t.Errorf("key ID %q, want k1", got)
	}
	var back map[string]string
	if err := dc.FromPayload(p, &back); err != nil || back["DB_PASSWORD"] != planted {
		t.Fatalf("opened %v, %v", back, err)
	}
	// Two seals of one value differ (a fresh nonce each).
	q, _ := dc.ToPayload(map[string]string{"DB_PASSWORD": planted})
	if bytes.Equal(p.Data, q.Data) {
		t.Error("two seals of one value are identical")
	}
}

func TestRotation(t *testing.T) {
	old := mustNew(t, key("2026-11", 1))
	sealedOld, err := old.DataConverter().ToPayload("v")
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustNew(t, key("2026-12", 2), key("2026-11", 1))
	var s string
	if err := rotated.DataConverter().FromPayload(sealedOld, &s); err != nil || s != "v" {
		t.Fatalf("the rotated codec opens the old key's payload: %q, %v", s, err)
	}
	sealedNew, _ := rotated.DataConverter().ToPayload("w")
	if got := string(sealedNew.Metadata[MetadataKey]); got != "2026-12" {
		t.Errorf("rotated codec seals with %q, want the first key", got)
	}
	if err := old.DataConverter().FromPayload(sealedNew, &s); err == nil || !strings.Contains(err.Error(), `key "2026-12", which this process does not have`) {
		t.Errorf("a codec without the new key: %v", err)
	}
}

func TestAlteredAndPlainPayloads(t *testing.T) {
	c := mustNew(t, key("k1", 1))
	sealed, _ := c.DataConverter().ToPayload("v")
	sealed.Data[len(sealed.Data)-1] ^= 1
	var s string
	if err := c.DataConverter().FromPayload(sealed, &s); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("altered payload: %v", err)
	}
	// Same key bytes under another ID do not open it either (the ID is bound).
	sealed, _ = c.DataConverter().ToPayload("v")
	sealed.Metadata[MetadataKey] = []byte("k2")
	other := mustNew(t, key("k1", 1), key("k2", 1))
	if err := other.DataConverter().FromPayload(sealed, &s); err == nil {
		t.Error("a payload relabelled to another key ID opened")
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload("before the codec")
	if err := c.DataConverter().FromPayload(plain, &s); err != nil || s != "before the codec" {
		t.Errorf("plain payload: %q, %v", s, err)
	}
}

func TestKeysAreValidated(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize))
	for text, want := range map[string]string{
		"":                         "none",
		"k1":                       "entry 1: want KEYID=BASE64",
		"k1=***":                   "key k1: not base64",
		"k1=" + b64[:8]:            "key k1: 6 bytes, want 32",
		"bad id=" + b64:            `key ID "bad id"`,
		"k1=" + b64 + ",k1=" + b64: "k1 listed twice",
	} {
		keys, err := ParseKeys(text, "test")
		if err == nil {
			_, err = New(keys)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), b64) {
			t.Errorf("%q: the error shows a key: %v", text, err)
		}
	}
	keys, err := ParseKeys("# rotated 2026-12\nnew="+b64+"\n\nold="+b64+"\n", "test")
	if err != nil || len(keys) != 2 || keys[0].ID != "new" {
		t.Errorf("file form: %+v, %v", keys, err)
	}
}

func TestHandler(t *testing.T) {
	c := mustNew(t, key("k1", 1))
	srv := httptest.NewServer(Handler(c, ServerOptions{Token: "Bearer t0ken", Origins: []string{"http://127.0.0.1:8233"}}))
	defer srv.Close()
	sealed, _ := c.DataConverter().ToPayload(planted)
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed}})
	post := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, out := post(""); code != http.StatusUnauthorized || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(`"`+planted+`"`))) {
		t.Errorf("no token: %d %s", code, out)
	}
	if code, _ := post("Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	code, out := post("Bearer t0ken")
	if code != http.StatusOK || !strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(`"`+planted+`"`))) {
		t.Errorf("decode: %d %s", code, out)
	}
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", "http://127.0.0.1:8233")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" {
		t.Errorf("preflight from the UI: %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Set("Origin", "http://evil.example")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin got CORS headers: %v", resp.Header)
	}
}

func protojsonMarshal(p *commonpb.Payload) ([]byte, error) { return protojson.Marshal(p) }
