package functions

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// Bounds of the metadata of a resource (function, subscription, event
// type, CORS configuration): the user's own labels, stored with it and
// shown in every list.
const (
	MaxMetadataKeys     = 64
	MaxMetadataKeyLen   = 256  // bytes
	MaxMetadataValueLen = 1024 // bytes
)

// ValidateMetadata checks the arbitrary metadata of a resource against
// the bounds above. Keys are non-empty.
func ValidateMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return errkind.New(errkind.Invalid, "metadata has %d keys, more than %d", len(m), MaxMetadataKeys)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same key every time
	for _, k := range keys {
		v := m[k]
		switch {
		case k == "":
			return errkind.New(errkind.Invalid, "metadata has an empty key")
		case len(k) > MaxMetadataKeyLen:
			return errkind.New(errkind.Invalid, "metadata key %.32q... is longer than %d bytes", k, MaxMetadataKeyLen)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return errkind.New(errkind.Invalid, "metadata %q is not valid UTF-8", k)
		case len(v) > MaxMetadataValueLen:
			return errkind.New(errkind.Invalid, "metadata.%s is longer than %d bytes", k, MaxMetadataValueLen)
		}
	}
	return nil
}

// MatchMetadata reports whether metadata m has every key of filter with
// the same value. An empty filter matches everything.
func MatchMetadata(m, filter map[string]string) bool {
	for k, want := range filter {
		if got, ok := m[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// FilterPrefix starts the query parameters that filter lists on metadata,
// as in ?metadata.service=users.
const FilterPrefix = "metadata."

// ParseFilter turns the query of a list request into a metadata filter:
// metadata.<key>=<value> requires metadata key <key> to be <value>. Any
// other parameter, or one given twice, is refused: a filter that is
// silently ignored would list what the client did not ask for.
func ParseFilter(q url.Values) (map[string]string, error) {
	if len(q) == 0 {
		return nil, nil
	}
	filter := make(map[string]string, len(q))
	for name, vals := range q {
		key, ok := strings.CutPrefix(name, FilterPrefix)
		if !ok || key == "" {
			return nil, errkind.New(errkind.Invalid, "query parameter %q is not a filter: filters have the form metadata.<key>=<value>", name)
		}
		if len(vals) != 1 {
			return nil, errkind.New(errkind.Invalid, "filter %q is given %d times", name, len(vals))
		}
		filter[key] = vals[0]
	}
	return filter, nil
}

// Page selects part of a list ordered by id: the items after the id After
// ("" from the first), at most Limit of them (0: all of them).
type Page struct {
	After string
	Limit int
}

// MaxPageLimit bounds the items of one page of a list.
const MaxPageLimit = 1000

// ListPageOf returns a page of the values stored under prefix in kv
// whose metadata match filter, ordered by key, and the id to continue
// after (the key past prefix; "" at the end). decode reads a value and
// its metadata; its error ends the list.
func ListPageOf[T any](ctx context.Context, kv *libkv.Store, prefix string, page Page, filter map[string]string, decode func(libkv.KV) (T, map[string]string, error)) ([]T, string, error) {
	out := []T{}
	var last string
	more, err := kv.ListAfter(ctx, prefix, page.After, page.Limit, func(kv libkv.KV) (bool, error) {
		v, md, err := decode(kv)
		if err != nil {
			return false, err
		}
		if !MatchMetadata(md, filter) {
			return false, nil
		}
		out = append(out, v)
		last = kv.Key
		return true, nil
	})
	if err != nil || !more || len(out) == 0 {
		return out, "", err
	}
	return out, strings.TrimPrefix(last, prefix), nil
}
