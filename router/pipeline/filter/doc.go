// Package filter matches events against event patterns with the semantics
// of Amazon EventBridge, for the subscription field "filter" (issue #15).
// A pattern is compiled once per configuration version (Compile) and then
// matched against the raw JSON bytes of each event (Filter.Match) in one
// pass over the bytes, without decoding the event and, for usual patterns,
// without allocating. The event is the document the subscriber would
// receive: the seed envelope {event,id,receivedAt,data,dataType}, a
// CloudEvent in JSON, or for http events their data
// {method,path,headers,query,params,body}. The package imports nothing of
// the gateway.
//
// # Syntax
//
// A pattern is a JSON object whose members mirror the event's structure.
// A member's value is either a nested pattern object or an array of
// conditions:
//
//	{
//	  "event": ["user.created", "user.updated"],
//	  "data": {
//	    "name": [{"prefix": "Jo"}],
//	    "size": [{"numeric": [">", 0, "<=", 5]}]
//	  },
//	  "$or": [{"source": ["web"]}, {"data": {"vip": [true]}}]
//	}
//
// All members of an object must match (AND); a field matches if any of
// its conditions matches (OR); fields of the event the pattern does not
// name are ignored. "$or": [pattern, pattern, ...] (at least two
// alternatives) at any object level matches if one alternative, matched
// against the same object, does; it combines with the object's other
// members by AND, and alternatives may nest further $or.
//
// Conditions:
//
//	"text", 12.5, true, false, null   the value itself (typed: "5" is not 5)
//	{"prefix": "ab"}                  a string beginning with ab
//	{"prefix": {"equals-ignore-case": "Ab"}}
//	{"suffix": ".png"}                a string ending with .png
//	{"suffix": {"equals-ignore-case": ".PNG"}}
//	{"equals-ignore-case": "alice"}   a string equal under case folding
//	{"wildcard": "dir/*.png"}         * matches any characters (none too);
//	                                  \* is a literal star, \\ a backslash
//	{"numeric": [">", 0, "<=", 5]}    a number in range: one bound (=, <, <=,
//	                                  >, >=) or a lower (>, >=) then an upper
//	                                  (<, <=) bound
//	{"cidr": "10.0.0.0/24"}           a string that is an IP address in the
//	                                  prefix (a bare address is a /32 or /128)
//	{"exists": true}                  the field has a value
//	{"exists": false}                 the field has no value
//	{"anything-but": X}               a value for which X does not hold; X is
//	                                  a string, a number, a list of strings and
//	                                  numbers, or {"prefix": s}, {"suffix": s},
//	                                  {"wildcard": s}, {"equals-ignore-case":
//	                                  s or [s, ...]}
//
// # Semantics and choices
//
//   - Values. A field's values are its value, or if it is an array the
//     elements of it, nested arrays flattened; objects are not values.
//     Every condition but exists is tested on each value and holds if it
//     holds for one. So {"tags": ["red"]} matches "tags": ["blue", "red"].
//   - Missing fields. A condition other than {"exists": false} never
//     matches a field without values, anything-but included.
//   - exists. {"exists": true} holds when the field has at least one
//     value, {"exists": false} when it has none: when it is absent, an
//     object, an empty array or an array of objects only. null is a value:
//     "x": null exists, as in EventBridge. [{"exists": false}, "a"] matches
//     an absent field or "a".
//   - Numbers compare numerically as float64: 5 matches 5.0, 5e0 and 0.5E1;
//     -0 matches 0. A number beyond float64's range is ±Inf. Pattern
//     numbers must be finite. Numbers never match strings, nor strings
//     numbers.
//   - Strings compare by their decoded value: "\u00e9" in the event is
//     "é" in the pattern. Invalid UTF-8 and lone surrogates read as U+FFFD,
//     as encoding/json decodes them. Exact, prefix, suffix and wildcard
//     compare bytes (case-sensitive); equals-ignore-case and the
//     equals-ignore-case forms use Unicode simple case folding, rune by
//     rune, like strings.EqualFold (so "ß" does not equal "SS").
//   - anything-but X is the negation of X over any value: {"anything-but":
//     "stopped"} matches 5, null and "running", not "stopped" and not a
//     missing field; on ["stopped", "x"] it matches (through "x").
//   - Nested patterns. A nested pattern object matched against an array
//     matches if it matches one element (all of its fields within that
//     same element); against an empty array, a scalar or a missing field
//     it is matched as against an empty object, where only
//     {"exists": false} conditions hold.
//   - Member names are compared decoded and exactly, no dotted paths:
//     {"a.b": [...]} names the member "a.b". "$or" is always the operator.
//   - Duplicate member names in an event: the last counts, as for
//     encoding/json. In a pattern they are an error.
//   - An event that is not one valid JSON object (by encoding/json's rules,
//     nesting up to 10000 levels) matches nothing; Match never panics.
//
// # Validation and bounds
//
// Compile refuses, with a *PatternError giving the path (for example
// detail.size[0].numeric[2]) and the byte offset of the fault: invalid
// JSON, a pattern that is not an object, an empty pattern or nested
// object, a field that is neither an object nor an array, an empty array
// of conditions, a condition that is an array, an operator object
// without exactly one member, an unknown operator, operands of the wrong
// type, numeric with a bad sequence of operators, non-numbers or an empty
// range, wildcards with two stars in a row or a backslash escaping
// anything but * or \, a malformed cidr, $or with fewer than two
// alternatives or an alternative that is not a non-empty object, and
// duplicate member names. Bounds (constants below): MaxPatternBytes
// (64 KiB), MaxDepth (32 nested objects and arrays), MaxConditions (1024)
// and MaxFieldsPerObject (256 per object level, $or alternatives
// included).
//
// Cost. Compile is linear in the pattern, times its depth where $or
// alternatives name the same nested objects. Match reads the event once,
// validating it, and tests the conditions of a field on the values at
// that place only; $or is evaluated as a formula over the fields' results
// (no expansion into combinations), and the nested objects that $or
// alternatives name alike ({"$or":[{"data":{…}},{"data":{…}}]}) are
// matched together, in one reading of the event's object. Each condition
// is linear in the value it tests — wildcards included: the literal parts
// between stars are found leftmost in turn, without backtracking — so the
// work per event is bounded by the event's size times the conditions that
// apply to a value. Only cidr on IPv6 values, strings with escapes longer
// than 256 bytes and member names with escapes longer than 128 bytes
// allocate.
package filter
