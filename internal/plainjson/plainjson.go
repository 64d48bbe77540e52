// Package plainjson writes JSON as the gateway stores and serves it:
// without encoding/json's HTML escaping. A filter's ">" or a script's
// "&&" read back as their authors wrote them, not as \u003e and \u0026.
// Nothing the gateway writes as JSON is served as HTML.
package plainjson

import (
	"bytes"
	"encoding/json"
)

// Marshal is json.Marshal without HTML escaping.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// Encode ends the value with a newline; Marshal does not.
	return b.Bytes()[:b.Len()-1], nil
}
