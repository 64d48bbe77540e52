package event

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestInvalidUTF8InJSON: JSON with invalid UTF-8 inside a string passes
// json.Valid; passed on as it is it would make the envelope invalid JSON.
// Custom events and CloudEvents refuse it; an http event's body is
// repaired, as any body that is not JSON, by passing it base64-encoded.
func TestInvalidUTF8InJSON(t *testing.T) {
	bad := []byte("{\"a\":\"x\xffy\"}")
	if _, err := New("e", bad, "application/json", time.Now()); err == nil {
		t.Error("New accepted invalid UTF-8 under a JSON type")
	}
	if _, _, err := NewPayload("e", bad, "application/json", time.Now()); err == nil {
		t.Error("NewPayload accepted invalid UTF-8 under a JSON type")
	}
	if b := EncodeBody(bad, "application/json"); !json.Valid(b) || b[0] != '"' {
		t.Errorf("http event body %q, want a base64 string", b)
	}
	if _, err := DecodeStructured([]byte("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"data\":{\"a\":\"x\xff\"}}")); err == nil {
		t.Error("structured event with invalid UTF-8 in its data accepted")
	}
	if _, err := DecodeV01([]byte("{\"cloudEventsVersion\":\"0.1\",\"eventID\":\"1\",\"source\":\"s\",\"eventType\":\"t\",\"data\":\"x\xff\"}")); err == nil {
		t.Error("v0.1 event with invalid UTF-8 in its data accepted")
	}
	h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"s"}, "Ce-Type": {"t"}, "Content-Type": {"application/json"}}
	if _, err := DecodeBinary(h, bad); err == nil {
		t.Error("binary event with invalid UTF-8 in a JSON body accepted")
	}
}
