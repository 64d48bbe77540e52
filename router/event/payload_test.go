package event

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestNewPayload: the envelope and its encoding built together are what
// New and AppendJSON make, in a buffer that never grew.
func TestNewPayload(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	for _, tt := range []struct{ body, ct string }{
		{`{"a":1}`, "application/json"},
		{"", ""},
		{"\x00\x01binary", "application/octet-stream"},
		{strings.Repeat("x", 1<<20), "text/plain"},
	} {
		ev, payload, err := NewPayload("e", []byte(tt.body), tt.ct, now)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := New("e", []byte(tt.body), tt.ct, now)
		want.ID = ev.ID
		if !bytes.Equal(ev.Data, want.Data) || ev.DataType != want.DataType || !bytes.Equal(payload, want.AppendJSON(nil)) {
			t.Errorf("%.20q: payload %.200s", tt.body, payload)
		}
		if cap(payload) > len(payload)+envelopeOverhead {
			t.Errorf("%.20q: buffer of %d bytes for %d", tt.body, cap(payload), len(payload))
		}
		if c := ev.JSONSize(); c < len(payload) {
			t.Errorf("JSONSize %d, encoding %d", c, len(payload))
		}
	}
	if _, _, err := NewPayload("e", []byte(`{oops`), "application/json", now); err == nil {
		t.Error("invalid JSON accepted")
	}
}
