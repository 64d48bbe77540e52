package upstream

import (
	"context"
	"testing"
)

func TestOverrides(t *testing.T) {
	var o Overrides
	if _, ok := o.Get("s", "f"); ok {
		t.Fatal("the zero value has entries")
	}
	var seen []Update
	ctx, cancel := context.WithCancel(t.Context())
	o.Watch(ctx, func(u Update) { seen = append(seen, u) })

	a := []Backend{{URL: "http://a"}}
	b := []Backend{{URL: "http://b", Weight: 3}}
	o.Apply("one", []Update{{Space: "s", FunctionID: "f", Backends: a, Found: true}, {Space: "s", FunctionID: "g", Backends: a, Found: true}}, false)
	// Another source cannot take a function the first one set.
	o.Apply("two", []Update{{Space: "s", FunctionID: "f", Backends: b, Found: true}, {Space: "s", FunctionID: "h", Backends: b, Found: true}}, false)
	if got, _ := o.Get("s", "f"); got[0].URL != "http://a" {
		t.Fatalf("f is %+v, want the first source's", got)
	}
	if len(seen) != 3 {
		t.Fatalf("%d changes seen, want 3: %+v", len(seen), seen)
	}
	// The same again is no change.
	o.Apply("one", []Update{{Space: "s", FunctionID: "f", Backends: a, Found: true}}, false)
	if len(seen) != 3 {
		t.Fatalf("an unchanged push was reported: %+v", seen[3:])
	}
	// A full state from "one" removes its g, keeps two's h.
	o.Apply("one", []Update{{Space: "s", FunctionID: "f", Backends: b, Found: true}}, true)
	if _, ok := o.Get("s", "g"); ok {
		t.Fatal("g survived a full state without it")
	}
	if got, ok := o.Get("s", "h"); !ok || got[0].Weight != 3 {
		t.Fatal("another source's entry was removed")
	}
	if got, _ := o.Get("s", "f"); got[0].URL != "http://b" || o.Len() != 2 {
		t.Fatalf("f %+v, %d entries", got, o.Len())
	}
	if len(seen) != 5 {
		t.Fatalf("changes %+v", seen)
	}
	// Not found removes; a watcher whose context ended hears nothing.
	cancel()
	o.Apply("two", []Update{{Space: "s", FunctionID: "h"}}, false)
	if _, ok := o.Get("s", "h"); ok || len(seen) != 5 {
		t.Fatalf("h after removal: %v, changes %d", ok, len(seen))
	}
}
