package plainjson

import (
	"encoding/json"
	"testing"
)

func TestMarshal(t *testing.T) {
	v := struct {
		Script string          `json:"script"`
		Filter json.RawMessage `json:"filter"`
	}{"a && b < c", json.RawMessage(`{ "n": [ ">", 1 ] }`)}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"script":"a && b < c","filter":{"n":[">",1]}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Fatal("a func was marshalled")
	}
}
