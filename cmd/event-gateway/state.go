package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// The subcommands apply, export, history and rollback are thin clients of
// the Configuration API's state endpoints (/v1/spaces/<space>/apply,
// state, history, rollback): the gateway validates, plans and commits;
// the command reads the file, resolves the secrets it names from the
// environment, and prints the answer.

// stateClient is the connection settings every state subcommand takes.
type stateClient struct {
	configURL, token, space string
	stdout, stderr          io.Writer
	name                    string
	http                    *http.Client
}

func newStateFlags(name string, stdout, stderr io.Writer, getenv func(string) string) (*flag.FlagSet, *stateClient) {
	c := &stateClient{stdout: stdout, stderr: stderr, name: name, http: &http.Client{Timeout: 2 * time.Minute}}
	fs := flag.NewFlagSet("event-gateway "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.configURL, "config-url", envOr(getenv, "EVENT_GATEWAY_CONFIG_URL", "http://127.0.0.1:4001"), "the gateway's Configuration API (env EVENT_GATEWAY_CONFIG_URL)")
	fs.StringVar(&c.token, "token", getenv("EVENT_GATEWAY_TOKEN"), "the gateway's -config-token or a configuration key of the space (env EVENT_GATEWAY_TOKEN)")
	fs.StringVar(&c.space, "space", "", "the space")
	return fs, c
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// fail prints an error and returns the exit code 1.
func (c *stateClient) fail(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "event-gateway %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return 1
}

// call sends a request to the space's endpoint and decodes a 200 answer
// into out; any other answer is an error with the gateway's message.
func (c *stateClient) call(method, endpoint string, query url.Values, body []byte, out any) error {
	u := strings.TrimRight(c.configURL, "/") + "/v1/spaces/" + url.PathEscape(c.space) + "/" + endpoint
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, u, bytes.TrimSpace(b))
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// plan is the answer of apply and rollback.
type plan struct {
	Space     string `json:"space"`
	DryRun    bool   `json:"dryRun"`
	Revision  int64  `json:"revision"`
	Unchanged int    `json:"unchanged"`
	Changes   []struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Action string `json:"action"`
	} `json:"changes"`
}

func (p *plan) print(w io.Writer) {
	n := map[string]int{}
	for _, c := range p.Changes {
		mark := map[string]string{"create": "+", "update": "~", "delete": "-"}[c.Action]
		fmt.Fprintf(w, "  %s %s %s/%s\n", mark, c.Action, c.Kind, c.ID)
		n[c.Action]++
	}
	fmt.Fprintf(w, "%d to create, %d to update, %d to delete, %d unchanged.\n", n["create"], n["update"], n["delete"], p.Unchanged)
	switch {
	case p.DryRun:
		fmt.Fprintf(w, "Dry run: nothing changed (space %q read at revision %d).\n", p.Space, p.Revision)
	case len(p.Changes) == 0:
		fmt.Fprintf(w, "Space %q is up to date (revision %d).\n", p.Space, p.Revision)
	default:
		fmt.Fprintf(w, "Applied to space %q at revision %d.\n", p.Space, p.Revision)
	}
}

// applyCommand runs `event-gateway apply -f FILE`.
func applyCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, c := newStateFlags("apply", stdout, stderr, getenv)
	file := fs.String("f", "", "the state file, YAML or JSON (- for standard input)")
	dry := fs.Bool("dry-run", false, "print the plan, validated as the gateway validates it, and change nothing")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: event-gateway apply -f FILE [-dry-run] [-space S] [-config-url URL] [-token T]

Makes a space match the state declared in FILE (its functions,
subscriptions, event types and CORS configurations), in one transaction:
everything changes or nothing does. A value {"fromEnv": "NAME"} anywhere in
the file is replaced by the environment variable NAME, so secrets stay out
of the file. See docs/operations.md.

`)
		fs.PrintDefaults()
	}
	if code, done := parseSub(fs, args, c); done {
		return code
	}
	if *file == "" {
		return c.fail("-f FILE is required")
	}
	var data []byte
	var err error
	if *file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return c.fail("%v", err)
	}
	body, fileSpace, err := prepareState(data, getenv)
	if err != nil {
		return c.fail("%s: %v", *file, err)
	}
	switch {
	case c.space == "" && fileSpace == "":
		return c.fail("no space: give -space or a top-level space: in %s", *file)
	case c.space == "":
		c.space = fileSpace
	case fileSpace != "" && fileSpace != c.space:
		return c.fail("%s declares space %q, not %q", *file, fileSpace, c.space)
	}
	q := url.Values{}
	if *dry {
		q.Set("dryRun", "true")
	}
	var p plan
	if err := c.call(http.MethodPost, "apply", q, body, &p); err != nil {
		return c.fail("%v", err)
	}
	p.print(stdout)
	return 0
}

// parseSub parses a subcommand's flags; done reports that the command
// ends with code.
func parseSub(fs *flag.FlagSet, args []string, c *stateClient) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		return c.fail("unexpected arguments: %s", strings.Join(fs.Args(), " ")) + 1, true
	}
	return 0, false
}

// prepareState turns a state file into the JSON the API takes: YAML is
// converted, and every {"fromEnv": "NAME"} replaced by the value of the
// environment variable NAME. It returns the space the file declares.
func prepareState(data []byte, getenv func(string) string) ([]byte, string, error) {
	js := data
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return nil, "", err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, "", fmt.Errorf("not valid JSON: %w", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, "", errors.New("the state must be an object with functions, subscriptions, eventTypes, cors")
	}
	doc, err := resolveEnv(doc, "", getenv)
	if err != nil {
		return nil, "", err
	}
	space, _ := top["space"].(string)
	out, err := json.Marshal(doc)
	return out, space, err
}

// resolveEnv replaces each {"fromEnv": "NAME"} in v (at path) by the
// environment variable's value.
func resolveEnv(v any, path string, getenv func(string) string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if name, ok := v["fromEnv"]; ok && len(v) == 1 {
			s, ok := name.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%s: fromEnv must name an environment variable", path)
			}
			val := getenv(s)
			if val == "" {
				return nil, fmt.Errorf("%s: environment variable %s is not set", path, s)
			}
			return val, nil
		}
		for k, e := range v {
			r, err := resolveEnv(e, strings.TrimPrefix(path+"."+k, "."), getenv)
			if err != nil {
				return nil, err
			}
			v[k] = r
		}
	case []any:
		for i, e := range v {
			r, err := resolveEnv(e, path+"["+strconv.Itoa(i)+"]", getenv)
			if err != nil {
				return nil, err
			}
			v[i] = r
		}
	}
	return v, nil
}

// exportCommand runs `event-gateway export -space S`.
func exportCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, c := newStateFlags("export", stdout, stderr, getenv)
	format := fs.String("o", "yaml", "output format: yaml or json")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: event-gateway export -space S [-o yaml|json] [-config-url URL] [-token T]

Prints the state of a space in the form apply takes. Secrets are shown as
"*****", which apply reads as "keep the stored secret"; replace them with
{"fromEnv": "NAME"} to set them from the environment.

`)
		fs.PrintDefaults()
	}
	if code, done := parseSub(fs, args, c); done {
		return code
	}
	if c.space == "" {
		return c.fail("-space is required")
	}
	var raw json.RawMessage
	if err := c.call(http.MethodGet, "state", nil, nil, &raw); err != nil {
		return c.fail("%v", err)
	}
	switch *format {
	case "json":
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return c.fail("%v", err)
		}
		b.WriteByte('\n')
		stdout.Write(b.Bytes())
	case "yaml":
		y, err := yaml.JSONToYAML(raw)
		if err != nil {
			return c.fail("%v", err)
		}
		stdout.Write(y)
	default:
		return c.fail("-o %q is not yaml or json", *format)
	}
	return 0
}

// historyCommand runs `event-gateway history -space S`.
func historyCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, c := newStateFlags("history", stdout, stderr, getenv)
	limit := fs.Int("limit", 20, "how many changes to show, newest first")
	asJSON := fs.Bool("json", false, "print the entries as the API answers them, with each resource before and after")
	if code, done := parseSub(fs, args, c); done {
		return code
	}
	if c.space == "" {
		return c.fail("-space is required")
	}
	var raw json.RawMessage
	if err := c.call(http.MethodGet, "history", url.Values{"limit": {strconv.Itoa(*limit)}}, nil, &raw); err != nil {
		return c.fail("%v", err)
	}
	if *asJSON {
		var b bytes.Buffer
		json.Indent(&b, raw, "", "  ")
		b.WriteByte('\n')
		stdout.Write(b.Bytes())
		return 0
	}
	var h struct {
		History []struct {
			Revision int64     `json:"revision"`
			Time     time.Time `json:"time"`
			Actor    struct {
				Kind, Name string
			} `json:"actor"`
			Via        string `json:"via"`
			RollbackTo int64  `json:"rollbackTo"`
			Changes    []struct {
				Kind, ID, Action string
			} `json:"changes"`
		} `json:"history"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return c.fail("%v", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tTIME\tBY\tVIA\tCHANGES")
	for _, e := range h.History {
		by := e.Actor.Kind
		if e.Actor.Name != "" {
			by += ":" + e.Actor.Name
		}
		via := e.Via
		if e.RollbackTo > 0 {
			via += " to " + strconv.FormatInt(e.RollbackTo, 10)
		}
		var cs []string
		for _, ch := range e.Changes {
			cs = append(cs, ch.Action+" "+ch.Kind+"/"+ch.ID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Revision, e.Time.Format(time.RFC3339), by, via, strings.Join(cs, ", "))
	}
	tw.Flush()
	return 0
}

// rollbackCommand runs `event-gateway rollback -space S -revision N`.
func rollbackCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, c := newStateFlags("rollback", stdout, stderr, getenv)
	rev := fs.Int64("revision", 0, "the revision to restore the space to, as history lists them")
	dry := fs.Bool("dry-run", false, "print the plan and change nothing")
	if code, done := parseSub(fs, args, c); done {
		return code
	}
	if c.space == "" || *rev <= 0 {
		return c.fail("-space and -revision are required")
	}
	body, _ := json.Marshal(map[string]any{"revision": *rev, "dryRun": *dry})
	var p plan
	if err := c.call(http.MethodPost, "rollback", nil, body, &p); err != nil {
		return c.fail("%v", err)
	}
	p.print(stdout)
	return 0
}
