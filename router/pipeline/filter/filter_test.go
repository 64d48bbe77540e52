package filter

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

type matchCase struct {
	pattern, event string
	want           bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		f, err := Compile([]byte(c.pattern))
		if err != nil {
			t.Errorf("Compile(%s): %v", c.pattern, err)
			continue
		}
		if got := f.Match([]byte(c.event)); got != c.want {
			t.Errorf("pattern %s\nevent %s\nMatch = %v, want %v", c.pattern, c.event, got, c.want)
		}
		if ref := refMatch([]byte(c.pattern), []byte(c.event)); ref != c.want {
			t.Errorf("pattern %s\nevent %s\nreference = %v, want %v", c.pattern, c.event, ref, c.want)
		}
	}
}

func TestExactValues(t *testing.T) {
	runMatchCases(t, []matchCase{
		{`{"event":["user.created"]}`, `{"event":"user.created"}`, true},
		{`{"event":["user.created"]}`, `{"event":"user.deleted"}`, false},
		{`{"event":["user.created"]}`, `{"event":"User.created"}`, false},
		{`{"event":["a","b","user.created"]}`, `{"event":"user.created"}`, true},
		{`{"event":["user.created"]}`, `{}`, false},
		{`{"event":["user.created"]}`, `{"other":"user.created"}`, false},
		{`{"event":["user.created"]}`, `{"event":"user.created","extra":{"deep":[1,2,3]}}`, true},
		// numbers compare numerically
		{`{"n":[5]}`, `{"n":5}`, true},
		{`{"n":[5]}`, `{"n":5.0}`, true},
		{`{"n":[5]}`, `{"n":5e0}`, true},
		{`{"n":[5]}`, `{"n":0.5E1}`, true},
		{`{"n":[5]}`, `{"n":50e-1}`, true},
		{`{"n":[5.0]}`, `{"n":5}`, true},
		{`{"n":[0]}`, `{"n":-0}`, true},
		{`{"n":[5]}`, `{"n":5.000001}`, false},
		{`{"n":[5]}`, `{"n":"5"}`, false},
		{`{"n":["5"]}`, `{"n":5}`, false},
		{`{"n":[12345678901234567890]}`, `{"n":1.2345678901234567890e19}`, true},
		// booleans and null
		{`{"b":[true]}`, `{"b":true}`, true},
		{`{"b":[true]}`, `{"b":false}`, false},
		{`{"b":[true]}`, `{"b":"true"}`, false},
		{`{"b":[false]}`, `{"b":false}`, true},
		{`{"b":[null]}`, `{"b":null}`, true},
		{`{"b":[null]}`, `{}`, false},
		{`{"b":[null]}`, `{"b":"null"}`, false},
		{`{"b":["null"]}`, `{"b":null}`, false},
		{`{"b":[""]}`, `{"b":""}`, true},
		{`{"b":[""]}`, `{"b":null}`, false},
		// arrays in the event: any element
		{`{"tags":["red"]}`, `{"tags":["blue","red"]}`, true},
		{`{"tags":["red"]}`, `{"tags":["blue","green"]}`, false},
		{`{"tags":["red"]}`, `{"tags":[]}`, false},
		{`{"tags":["red"]}`, `{"tags":[["blue",["red"]]]}`, true},
		{`{"tags":["red"]}`, `{"tags":[{"x":"red"}]}`, false},
		{`{"tags":[1]}`, `{"tags":[0,1.0]}`, true},
		// nested objects
		{`{"data":{"user":{"name":["ann"]}}}`, `{"data":{"user":{"name":"ann"}}}`, true},
		{`{"data":{"user":{"name":["ann"]}}}`, `{"data":{"user":{"name":"bob"}}}`, false},
		{`{"data":{"user":{"name":["ann"]}}}`, `{"data":{"user":"ann"}}`, false},
		{`{"data":{"user":{"name":["ann"]}}}`, `{"data":"x"}`, false},
		{`{"data":{"name":["ann"]}}`, `{"data":[{"name":"bob"},{"name":"ann"}]}`, true},
		{`{"data":{"name":["ann"],"age":[3]}}`, `{"data":[{"name":"ann","age":4},{"name":"bob","age":3}]}`, false},
		{`{"data":{"name":["ann"],"age":[3]}}`, `{"data":[{"name":"ann","age":4},{"name":"ann","age":3}]}`, true},
		// unicode and escapes: a string compares by its decoded value
		{`{"s":["été"]}`, `{"s":"\u00e9t\u00E9"}`, true},
		{`{"s":["\u00e9t\u00e9"]}`, `{"s":"été"}`, true},
		{`{"s":["😀"]}`, `{"s":"\ud83d\ude00"}`, true},
		{`{"s":["a\"b\\c/d\n"]}`, `{"s":"a\u0022b\u005cc\/d\u000a"}`, true},
		{`{"s":["\ufffd"]}`, `{"s":"\ud800"}`, true},
		{`{"s":["\ufffd"]}`, "{\"s\":\"\xff\"}", true},
		{`{"s":["x"]}`, "{\"s\":\"x\xff\"}", false},
		{`{"\u00e9":["x"]}`, `{"é":"x"}`, true},
		{`{"é":["x"]}`, `{"\u00e9":"x"}`, true},
		{`{"a.b":["x"]}`, `{"a.b":"x"}`, true},
		{`{"a.b":["x"]}`, `{"a":{"b":"x"}}`, false},
		// duplicate names: the last counts, as for encoding/json
		{`{"a":["x"]}`, `{"a":"x","a":"y"}`, false},
		{`{"a":["y"]}`, `{"a":"x","a":"y"}`, true},
		// invalid events match nothing
		{`{"a":["x"]}`, `{"a":"x"`, false},
		{`{"a":["x"]}`, `{"a":"x"} x`, false},
		{`{"a":["x"]}`, `{"a":"x","b":01}`, false},
		{`{"a":["x"]}`, `{"a":"x","b":[1,]}`, false},
		{`{"a":["x"]}`, `{"a":"x","b":"\x"}`, false},
		{`{"a":["x"]}`, "{\"a\":\"x\",\"b\":\"\x01\"}", false},
		{`{"a":["x"]}`, `{"a":"x","b":tru}`, false},
		{`{"a":["x"]}`, `["a","x"]`, false},
		{`{"a":["x"]}`, ``, false},
		{`{"a":["x"]}`, ` {"a" : "x"} `, true},
	})
}

func TestOperators(t *testing.T) {
	runMatchCases(t, []matchCase{
		// prefix / suffix
		{`{"s":[{"prefix":"ord-"}]}`, `{"s":"ord-17"}`, true},
		{`{"s":[{"prefix":"ord-"}]}`, `{"s":"ORD-17"}`, false},
		{`{"s":[{"prefix":"ord-"}]}`, `{"s":"or"}`, false},
		{`{"s":[{"prefix":"ord-"}]}`, `{"s":["x","ord-1"]}`, true},
		{`{"s":[{"prefix":"5"}]}`, `{"s":55}`, false},
		{`{"s":[{"prefix":""}]}`, `{"s":""}`, true},
		{`{"s":[{"prefix":"é"}]}`, `{"s":"\u00e9t\u00e9"}`, true},
		{`{"s":[{"prefix":{"equals-ignore-case":"ORD-"}}]}`, `{"s":"oRd-17"}`, true},
		{`{"s":[{"prefix":{"equals-ignore-case":"ÉT"}}]}`, `{"s":"été"}`, true},
		{`{"s":[{"prefix":{"equals-ignore-case":"x"}}]}`, `{"s":"yx"}`, false},
		{`{"s":[{"suffix":".png"}]}`, `{"s":"a.png"}`, true},
		{`{"s":[{"suffix":".png"}]}`, `{"s":"a.PNG"}`, false},
		{`{"s":[{"suffix":".png"}]}`, `{"s":"a.png\u0020"}`, false},
		{`{"s":[{"suffix":{"equals-ignore-case":".PNG"}}]}`, `{"s":"a.png"}`, true},
		{`{"s":[{"suffix":{"equals-ignore-case":"K"}}]}`, `{"s":"\u212a"}`, true}, // Kelvin sign folds to k
		// equals-ignore-case
		{`{"s":[{"equals-ignore-case":"alice"}]}`, `{"s":"ALICE"}`, true},
		{`{"s":[{"equals-ignore-case":"alice"}]}`, `{"s":"ALICEs"}`, false},
		{`{"s":[{"equals-ignore-case":"straße"}]}`, `{"s":"STRASSE"}`, false}, // simple folding only
		{`{"s":[{"equals-ignore-case":"ΣΑΣ"}]}`, `{"s":"σας"}`, true},
		{`{"s":[{"equals-ignore-case":"5"}]}`, `{"s":5}`, false},
		// anything-but
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":"running"}`, true},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":"stopped"}`, false},
		{`{"s":[{"anything-but":"stopped"}]}`, `{}`, false},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":null}`, true},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":5}`, true},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":["stopped","stopped"]}`, false},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":["stopped","x"]}`, true},
		{`{"s":[{"anything-but":"stopped"}]}`, `{"s":[]}`, false},
		{`{"s":[{"anything-but":["a","b"]}]}`, `{"s":"b"}`, false},
		{`{"s":[{"anything-but":["a","b"]}]}`, `{"s":"c"}`, true},
		{`{"n":[{"anything-but":[1,2]}]}`, `{"n":2.0}`, false},
		{`{"n":[{"anything-but":[1,2]}]}`, `{"n":3}`, true},
		{`{"n":[{"anything-but":5}]}`, `{"n":"5"}`, true},
		{`{"s":[{"anything-but":{"prefix":"tmp/"}}]}`, `{"s":"tmp/x"}`, false},
		{`{"s":[{"anything-but":{"prefix":"tmp/"}}]}`, `{"s":"var/x"}`, true},
		{`{"s":[{"anything-but":{"suffix":".tmp"}}]}`, `{"s":"a.tmp"}`, false},
		{`{"s":[{"anything-but":{"suffix":".tmp"}}]}`, `{"s":"a.txt"}`, true},
		{`{"s":[{"anything-but":{"equals-ignore-case":"X"}}]}`, `{"s":"x"}`, false},
		{`{"s":[{"anything-but":{"equals-ignore-case":["X","y"]}}]}`, `{"s":"Y"}`, false},
		{`{"s":[{"anything-but":{"equals-ignore-case":["X","y"]}}]}`, `{"s":"z"}`, true},
		{`{"s":[{"anything-but":{"wildcard":"*.tmp"}}]}`, `{"s":"a.tmp"}`, false},
		{`{"s":[{"anything-but":{"wildcard":"*.tmp"}}]}`, `{"s":"a.txt"}`, true},
		// numeric
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":5}`, true},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":0}`, false},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":5.0000001}`, false},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":1e-9}`, true},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":"3"}`, false},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":[9,3]}`, true},
		{`{"n":[{"numeric":[">",0,"<=",5]}]}`, `{}`, false},
		{`{"n":[{"numeric":[">=",0,"<",5]}]}`, `{"n":-0}`, true},
		{`{"n":[{"numeric":["=",3.5]}]}`, `{"n":35e-1}`, true},
		{`{"n":[{"numeric":["<",0]}]}`, `{"n":-1e400}`, true},
		{`{"n":[{"numeric":[">",1e300]}]}`, `{"n":1e400}`, true},
		{`{"n":[{"numeric":[">",100]}]}`, `{"n":123456789012345678}`, true},
		{`{"n":[{"numeric":[">=",1.5]}]}`, `{"n":1.5}`, true},
		{`{"n":[{"numeric":["<=",-2]}]}`, `{"n":-2.5}`, true},
		// exists
		{`{"s":[{"exists":true}]}`, `{"s":"x"}`, true},
		{`{"s":[{"exists":true}]}`, `{"s":null}`, true},
		{`{"s":[{"exists":true}]}`, `{}`, false},
		{`{"s":[{"exists":true}]}`, `{"s":{"t":1}}`, false},
		{`{"s":[{"exists":true}]}`, `{"s":[]}`, false},
		{`{"s":[{"exists":true}]}`, `{"s":[[],{}]}`, false},
		{`{"s":[{"exists":true}]}`, `{"s":[[],1]}`, true},
		{`{"s":[{"exists":false}]}`, `{}`, true},
		{`{"s":[{"exists":false}]}`, `{"s":null}`, false},
		{`{"s":[{"exists":false}]}`, `{"s":"x"}`, false},
		{`{"s":[{"exists":false}]}`, `{"s":{"t":1}}`, true},
		{`{"s":[{"exists":false}]}`, `{"s":[]}`, true},
		{`{"d":{"s":[{"exists":false}]}}`, `{}`, true},
		{`{"d":{"s":[{"exists":false}]}}`, `{"d":5}`, true},
		{`{"d":{"s":[{"exists":false}]}}`, `{"d":{"s":1}}`, false},
		{`{"d":{"s":[{"exists":false}]}}`, `{"d":[{"s":1},{"t":1}]}`, true},
		{`{"d":{"s":[{"exists":false}]}}`, `{"d":[]}`, true},
		{`{"s":[{"exists":false},"x"]}`, `{"s":"x"}`, true},
		{`{"s":[{"exists":false},"x"]}`, `{"s":"y"}`, false},
		// wildcard
		{`{"s":[{"wildcard":"dir/*.png"}]}`, `{"s":"dir/a/b.png"}`, true},
		{`{"s":[{"wildcard":"dir/*.png"}]}`, `{"s":"dir/a.jpg"}`, false},
		{`{"s":[{"wildcard":"*"}]}`, `{"s":""}`, true},
		{`{"s":[{"wildcard":"*"}]}`, `{"s":7}`, false},
		{`{"s":[{"wildcard":"a*a"}]}`, `{"s":"a"}`, false},
		{`{"s":[{"wildcard":"a*a"}]}`, `{"s":"aa"}`, true},
		{`{"s":[{"wildcard":"*a*b*c*"}]}`, `{"s":"xxaxbxcx"}`, true},
		{`{"s":[{"wildcard":"*a*b*c*"}]}`, `{"s":"xxcxbxax"}`, false},
		{`{"s":[{"wildcard":"a\\*b"}]}`, `{"s":"a*b"}`, true},
		{`{"s":[{"wildcard":"a\\*b"}]}`, `{"s":"axb"}`, false},
		{`{"s":[{"wildcard":"a\\\\*"}]}`, `{"s":"a\\zz"}`, true},
		{`{"s":[{"wildcard":"noStar"}]}`, `{"s":"noStar"}`, true},
		{`{"s":[{"wildcard":"é*é"}]}`, `{"s":"\u00e9t\u00e9"}`, true},
		// cidr
		{`{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"10.0.0.255"}`, true},
		{`{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"10.0.1.0"}`, false},
		{`{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"010.0.0.1"}`, false},
		{`{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"10.0.0"}`, false},
		{`{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"::ffff:10.0.0.1"}`, false},
		{`{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db8::1"}`, true},
		{`{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db9::1"}`, false},
		{`{"ip":[{"cidr":"192.168.1.7"}]}`, `{"ip":"192.168.1.7"}`, true},
		{`{"ip":[{"cidr":"192.168.1.7"}]}`, `{"ip":"192.168.1.8"}`, false},
	})
}

func TestOr(t *testing.T) {
	p := `{"source":["shop"],"$or":[{"n":[{"numeric":[">",100]}]},{"vip":[true]},{"d":{"$or":[{"x":[1]},{"y":[2]}]}}]}`
	runMatchCases(t, []matchCase{
		{p, `{"source":"shop","n":101}`, true},
		{p, `{"source":"shop","n":99}`, false},
		{p, `{"source":"shop","vip":true}`, true},
		{p, `{"source":"web","vip":true}`, false},
		{p, `{"source":"shop","d":{"y":2}}`, true},
		{p, `{"source":"shop","d":{"y":3,"x":1}}`, true},
		{p, `{"source":"shop","d":{"y":3}}`, false},
		{`{"$or":[{"a":["x"]},{"a":["y"]}]}`, `{"a":"y"}`, true},
		{`{"$or":[{"a":["x"]},{"a":{"b":["y"]}}]}`, `{"a":{"b":"y"}}`, true},
		{`{"$or":[{"a":["x"]},{"a":{"b":["y"]}}]}`, `{"a":"x"}`, true},
		{`{"$or":[{"a":["x"]},{"a":{"b":["y"]}}]}`, `{"a":"y"}`, false},
		{`{"$or":[{"a":[{"exists":false}]},{"b":["y"]}]}`, `{"b":"z"}`, true},
		{`{"$or":[{"a":["x"]},{"b":["y"]}],"$or ":["z"]}`, `{"a":"x","$or ":"z"}`, true},
		{`{"d":{"$or":[{"a":["x"]},{"b":["y"]}]}}`, `{"d":[{"a":"q"},{"b":"y"}]}`, true},
	})
}

// compileErrorCases: every validation error, with its path and where it is
// (the offset of the first occurrence of at in the pattern, or off).
var compileErrorCases = []struct {
	pattern, path, at string
	off               int
	reason            string
}{
	{``, "", "", 0, "unexpected end"},
	{`   `, "", "", 3, "unexpected end"},
	{`[]`, "", "[", 0, "a pattern is a JSON object, not an array"},
	{`"x"`, "", `"x"`, 0, "not a string"},
	{`{}`, "", "{", 0, "empty pattern"},
	{`{"a":["x"]} {}`, "", "{}", 0, "data after the pattern"},
	{`{"a":["x"],}`, "", "}", -1, "expected a member name"},
	{`{"a" ["x"]}`, "a", "[", 0, "expected ':'"},
	{`{"a":["x" "y"]}`, "a", `"y"`, 0, "expected ',' or ']'"},
	{`{"a":["x\q"]}`, "a[0]", `"x`, 0, "invalid string"},
	{`{"a":[01]}`, "a", "1]", 0, "expected ',' or ']'"},
	{`{"a":[1e999]}`, "a[0]", "1e999", 0, "out of range"},
	{`{"a":[nul]}`, "a[0]", "nul", 0, "invalid JSON value"},
	{`{"a":["x"],"a":["y"]}`, "a", `"a":["y`, 0, "duplicate member"},
	{`{"a":"x"}`, "a", `"x"`, 0, "not a string"},
	{`{"a":5}`, "a", `5`, 0, "not a number"},
	{`{"a":null}`, "a", `null`, 0, "not null"},
	{`{"a":[]}`, "a", `[]`, 0, "empty array of conditions"},
	{`{"a":{}}`, "a", `{}`, 0, "empty object"},
	{`{"a":[["x"]]}`, "a[0]", `["x"]`, 0, "not an array"},
	{`{"a":[{}]}`, "a[0]", `{}`, 0, "exactly one member, not 0"},
	{`{"a":[{"prefix":"x","suffix":"y"}]}`, "a[0]", `{"p`, 0, "exactly one member, not 2"},
	{`{"a":{"b":["x",{"frob":1}]}}`, "a.b[1].frob", `"frob"`, 0, `unknown operator "frob"`},
	{`{"a":[{"prefix":5}]}`, "a[0].prefix", `5`, 0, "prefix takes a string"},
	{`{"a":[{"prefix":{"equals-ignore-case":5}}]}`, "a[0].prefix.equals-ignore-case", `5`, 0, "takes a string"},
	{`{"a":[{"suffix":{"x":"y"}}]}`, "a[0].suffix", `{"x"`, 0, "suffix takes a string"},
	{`{"a":[{"equals-ignore-case":["x"]}]}`, "a[0].equals-ignore-case", `["x"]`, 0, "takes a string"},
	{`{"a":[{"exists":"yes"}]}`, "a[0].exists", `"yes"`, 0, "exists takes true or false"},
	{`{"a":[{"wildcard":"a**b"}]}`, "a[0].wildcard", `"a**b"`, 0, "consecutive wildcard"},
	{`{"a":[{"wildcard":"a\\b"}]}`, "a[0].wildcard", `"a\\b"`, 0, "invalid escape"},
	{`{"a":[{"wildcard":["a*"]}]}`, "a[0].wildcard", `["a*"]`, 0, "wildcard takes a string"},
	{`{"a":[{"cidr":"10.0.0.0/33"}]}`, "a[0].cidr", `"10.`, 0, "cidr takes"},
	{`{"a":[{"cidr":7}]}`, "a[0].cidr", `7`, 0, "cidr takes a string"},
	{`{"a":[{"numeric":5}]}`, "a[0].numeric", `5`, 0, "numeric takes an array"},
	{`{"a":[{"numeric":[">"]}]}`, "a[0].numeric", `[">"]`, 0, "one or two operator-number pairs"},
	{`{"a":[{"numeric":[">",1,"<",2,"<",3]}]}`, "a[0].numeric", `[">"`, 0, "not 6 elements"},
	{`{"a":[{"numeric":[5,">"]}]}`, "a[0].numeric[0]", `5,`, 0, "expected an operator"},
	{`{"a":[{"numeric":[">","5"]}]}`, "a[0].numeric[1]", `"5"`, 0, "expected a number"},
	{`{"a":[{"numeric":["!=",5]}]}`, "a[0].numeric[0]", `"!="`, 0, "unknown numeric operator"},
	{`{"a":[{"numeric":["=",5,"<",6]}]}`, "a[0].numeric[0]", `"="`, 0, "stands alone"},
	{`{"a":[{"numeric":["<",5,">",0]}]}`, "a[0].numeric[0]", `"<"`, 0, "first must be a lower bound"},
	{`{"a":[{"numeric":[">",0,">",5]}]}`, "a[0].numeric[2]", `">",5`, 0, "second bound must be an upper bound"},
	{`{"a":[{"numeric":[">",5,"<",1]}]}`, "a[0].numeric[3]", `1]`, 0, "empty range"},
	{`{"a":[{"numeric":[">",5,"<=",5]}]}`, "a[0].numeric[3]", `5]`, 0, "empty range"},
	{`{"a":[{"numeric":[">",0,"<=",true]}]}`, "a[0].numeric[3]", `true`, 0, "expected a number"},
	{`{"a":[{"anything-but":true}]}`, "a[0].anything-but", `true`, 0, "anything-but takes"},
	{`{"a":[{"anything-but":[]}]}`, "a[0].anything-but", `[]`, 0, "non-empty list"},
	{`{"a":[{"anything-but":["x",null]}]}`, "a[0].anything-but[1]", `null`, 0, "strings or numbers"},
	{`{"a":[{"anything-but":{"numeric":[">",1]}}]}`, "a[0].anything-but.numeric", `"numeric"`, 0, `unknown operator "numeric" in anything-but`},
	{`{"a":[{"anything-but":{"prefix":["x"]}}]}`, "a[0].anything-but.prefix", `["x"]`, 0, "prefix takes a string"},
	{`{"a":[{"anything-but":{"equals-ignore-case":[]}}]}`, "a[0].anything-but.equals-ignore-case", `[]`, 0, "non-empty list"},
	{`{"a":[{"anything-but":{"equals-ignore-case":["x",1]}}]}`, "a[0].anything-but.equals-ignore-case[1]", `1]`, 0, "lists strings"},
	{`{"a":[{"anything-but":{"wildcard":"**"}}]}`, "a[0].anything-but.wildcard", `"**"`, 0, "consecutive"},
	{`{"a":[{"anything-but":{"prefix":"x","suffix":"y"}}]}`, "a[0].anything-but", `{"prefix"`, 0, "exactly one member"},
	{`{"$or":{"a":["x"]}}`, "$or", `{"a"`, 0, "at least two patterns"},
	{`{"$or":[{"a":["x"]}]}`, "$or", `[{`, 0, "at least two patterns"},
	{`{"$or":[{"a":["x"]},["y"]]}`, "$or[1]", `["y"]`, 0, "not an array"},
	{`{"$or":[{"a":["x"]},{}]}`, "$or[1]", `{}`, 0, "empty pattern"},
	{`{"$or":[{"a":["x"]},{"b":{"c":[{"numeric":[">","x"]}]}}]}`, "$or[1].b.c[0].numeric[1]", `"x"]}]}}`, 0, "expected a number"},
	{`{"a b":{"c.d":[{"prefix":1}]}}`, `["a b"]["c.d"][0].prefix`, `1`, 0, "prefix takes a string"},
}

func TestCompileErrors(t *testing.T) {
	for _, c := range compileErrorCases {
		_, err := Compile([]byte(c.pattern))
		var pe *PatternError
		if !errors.As(err, &pe) {
			t.Errorf("Compile(%s) = %v, want a *PatternError", c.pattern, err)
			continue
		}
		off := c.off
		if c.at != "" {
			off += strings.Index(c.pattern, c.at)
		} else if c.off == 0 {
			off = 0
		}
		if c.off == -1 {
			off = strings.LastIndex(c.pattern, c.at)
		}
		if pe.Path != c.path || pe.Offset != off || !strings.Contains(pe.Reason, c.reason) {
			t.Errorf("Compile(%s):\n got path %q offset %d reason %q\nwant path %q offset %d reason ~%q", c.pattern, pe.Path, pe.Offset, pe.Reason, c.path, off, c.reason)
		}
	}
}

func TestLimits(t *testing.T) {
	check := func(name, pattern, path, reason string) {
		t.Helper()
		_, err := Compile([]byte(pattern))
		var pe *PatternError
		if !errors.As(err, &pe) || pe.Path != path || !strings.Contains(pe.Reason, reason) {
			t.Errorf("%s: got %v, want path %q reason ~%q", name, err, path, reason)
		}
	}
	big := `{"a":["` + strings.Repeat("x", MaxPatternBytes) + `"]}`
	check("size", big, "", "larger than")

	deep := strings.Repeat(`{"a":`, MaxDepth) + `["x"]` + strings.Repeat(`}`, MaxDepth)
	check("depth", deep, strings.TrimPrefix(strings.Repeat(".a", MaxDepth), "."), "nested deeper than")
	ok := strings.Repeat(`{"a":`, MaxDepth-1) + `["x"]` + strings.Repeat(`}`, MaxDepth-1)
	if _, err := Compile([]byte(ok)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	hostile := `{"a":` + strings.Repeat("[", 60000)
	check("hostile depth", hostile, "a"+strings.Repeat("[0]", MaxDepth-1), "nested deeper than")

	conds := `{"a":[` + strings.TrimSuffix(strings.Repeat(`1,`, MaxConditions+1), ",") + `]}`
	check("conditions", conds, "a["+itoa(MaxConditions)+"]", "more than")

	var fields []string
	for i := range MaxFieldsPerObject + 1 {
		fields = append(fields, `"f`+itoa(i)+`":[1]`)
	}
	check("fields", "{"+strings.Join(fields, ",")+"}", "f"+itoa(MaxFieldsPerObject), "more than")
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestEventDepth(t *testing.T) {
	f := MustCompile(`{"a":[{"exists":false}]}`)
	for _, depth := range []int{9999, 10000, 10001, 200000} {
		ev := `{"b":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		want := refMatch([]byte(`{"a":[{"exists":false}]}`), []byte(ev))
		if got := f.Match([]byte(ev)); got != want {
			t.Errorf("depth %d: Match = %v, reference %v", depth, got, want)
		}
	}
}

func TestPatternErrorString(t *testing.T) {
	_, err := Compile([]byte(`{"detail":{"size":[{"numeric":[">",0,"<=","5"]}]}}`))
	want := `filter pattern: detail.size[0].numeric[3]: expected a number, not a string (offset 42)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

const sampleEvent = `{"event":"user.created","id":"8e9f2c1a-3b4d-4e5f-9a6b-7c8d9e0f1a2b","receivedAt":1712345678901,"dataType":"application/json","data":{"user":{"id":"u-123456","name":"Jane Doe","email":"jane.doe@example.com","roles":["admin","editor","viewer"],"address":{"street":"1 Infinite Loop","city":"Cupertino","country":"US","zip":"95014"},"tags":["premium","beta","early-adopter"],"createdAt":"2024-04-05T12:34:56Z"},"order":{"id":"ord-98765","total":149.99,"currency":"USD","items":[{"sku":"SKU-1","qty":2,"price":49.99},{"sku":"SKU-2","qty":1,"price":50.01}],"shipping":{"method":"express","cost":0}},"source":"web","size":3,"ip":"10.0.0.42","meta":{"traceId":"a1b2c3d4e5f6","attempt":1,"flags":[true,false,null],"note":"caf\u00e9 \u2014 r\u00e9sum\u00e9"}}}`
