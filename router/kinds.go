package router

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
	corsconfig "github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// kind is one kind of resource of a space as the router keeps it: where
// its keys live and how a change of one is recorded in the cache.
type kind struct {
	// dir is the directory of the kind's keys in a space, with its slash.
	dir string
	// put records a created or changed resource and reports whether the
	// change matters for routing.
	put func(r *Router, c *cache, space, id string, val []byte) bool
	// del records a deleted resource.
	del func(r *Router, c *cache, space, id string) bool
}

// kinds are the resources the router reads. Other keys of a space (the
// index keys of the configuration services) are not routing data.
var kinds = [...]kind{
	{dir: "functions/", put: putFunction, del: delFunction},
	{dir: "subscriptions/", put: putSubscription, del: delSubscription},
	{dir: "eventtypes/", put: putEventType, del: delEventType},
	{dir: "cors/", put: putCORS, del: delCORS},
	{dir: "keys/", put: putKey, del: delKey},
}

// spaceOfKey returns the space of a key under spaces/.
func spaceOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, functions.SpacesRoot)
	if !ok {
		return "", false
	}
	space, _, ok := strings.Cut(rest, "/")
	return space, ok && space != ""
}

// parseKey splits spaces/<space>/<kind dir><id>.
func parseKey(key string) (space string, k *kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, functions.SpacesRoot)
	if !ok {
		return "", nil, "", false
	}
	space, rest, ok = strings.Cut(rest, "/")
	if !ok || space == "" {
		return "", nil, "", false
	}
	for i := range kinds {
		if id, ok := strings.CutPrefix(rest, kinds[i].dir); ok && id != "" {
			return space, &kinds[i], id, true
		}
	}
	return space, nil, "", false
}

// apply records one change in the cache and reports whether it matters
// for routing.
func (r *Router) apply(c *cache, ev libkv.Event) bool {
	space, k, id, ok := parseKey(ev.Key)
	if !ok || k == nil {
		return false
	}
	var changed bool
	if ev.Deleted {
		changed = k.del(r, c, space, id)
	} else {
		changed = k.put(r, c, space, id, ev.Value)
	}
	if changed {
		c.dirty[space] = true
	}
	return changed
}

func putFunction(r *Router, c *cache, space, id string, val []byte) bool {
	var f functions.Function
	if err := json.Unmarshal(val, &f); err != nil {
		r.log.Error("skipping undecodable function", "space", space, "functionId", id, "error", err)
		return false
	}
	sc := c.space(space, true)
	if old := sc.fns[id]; old != nil {
		c.retire(old.Invoker)
	}
	f.Space = space
	inv, err := r.invokers(f)
	if err != nil {
		r.log.Error("function cannot be invoked", "space", space, "functionId", f.ID, "error", err)
		delete(sc.fns, id)
		return true
	}
	sc.fns[id] = &Target{Space: space, Function: f, Invoker: inv, Timeout: f.TimeoutOr(r.timeout)}
	return true
}

func delFunction(r *Router, c *cache, space, id string) bool {
	sc := c.space(space, false)
	if sc == nil {
		return false
	}
	if old := sc.fns[id]; old != nil {
		c.retire(old.Invoker)
	}
	delete(sc.fns, id)
	c.dropIfEmpty(space)
	return true
}

func putSubscription(r *Router, c *cache, space, id string, val []byte) bool {
	var sub subscriptions.Subscription
	if err := json.Unmarshal(val, &sub); err != nil {
		r.log.Error("skipping undecodable subscription", "space", space, "subscriptionId", id, "error", err)
		return false
	}
	e, err := newSubEntry(sub, r.pipes)
	if err != nil {
		r.log.Error("skipping invalid subscription", "space", space, "subscriptionId", id, "error", err)
		return false
	}
	c.space(space, true).subs[id] = e
	return true
}

func delSubscription(r *Router, c *cache, space, id string) bool {
	sc := c.space(space, false)
	if sc == nil {
		return false
	}
	delete(sc.subs, id)
	c.dropIfEmpty(space)
	return true
}

func putEventType(r *Router, c *cache, space, name string, val []byte) bool {
	var et eventtypes.EventType
	if err := json.Unmarshal(val, &et); err != nil {
		r.log.Error("skipping undecodable event type", "space", space, "eventType", name, "error", err)
		return false
	}
	et.Space, et.Name = space, name
	c.space(space, true).types[name] = &et
	return true
}

func delEventType(r *Router, c *cache, space, name string) bool {
	sc := c.space(space, false)
	if sc == nil {
		return false
	}
	delete(sc.types, name)
	c.dropIfEmpty(space)
	return true
}

func putCORS(r *Router, c *cache, space, id string, val []byte) bool {
	var cfg corsconfig.Config
	if err := json.Unmarshal(val, &cfg); err != nil {
		r.log.Error("skipping undecodable CORS configuration", "space", space, "corsId", id, "error", err)
		return false
	}
	segs, err := cfg.Normalize()
	if err != nil {
		r.log.Error("skipping invalid CORS configuration", "space", space, "corsId", id, "error", err)
		return false
	}
	c.space(space, true).cors[id] = &corsEntry{method: cfg.Method, path: cfg.Path, segs: segs, policy: corsPolicy(cfg.AllowedOrigins, cfg.AllowedMethods, cfg.AllowedHeaders, cfg.AllowCredentials)}
	return true
}

func delCORS(r *Router, c *cache, space, id string) bool {
	sc := c.space(space, false)
	if sc == nil {
		return false
	}
	delete(sc.cors, id)
	c.dropIfEmpty(space)
	return true
}

func putKey(r *Router, c *cache, space, id string, val []byte) bool {
	var k keys.Stored
	if err := json.Unmarshal(val, &k); err != nil {
		r.log.Error("skipping undecodable key", "space", space, "keyId", id, "error", err)
		return false
	}
	var d [sha256.Size]byte
	if n, err := hex.Decode(d[:], []byte(k.Digest)); err != nil || n != len(d) {
		r.log.Error("skipping key with an invalid digest", "space", space, "keyId", id)
		return false
	}
	c.space(space, true).keys[id] = keyEntry{kind: k.Kind, digest: d, id: id, name: k.Name}
	return true
}

func delKey(r *Router, c *cache, space, id string) bool {
	sc := c.space(space, false)
	if sc == nil {
		return false
	}
	delete(sc.keys, id)
	c.dropIfEmpty(space)
	return true
}

// dropIfEmpty forgets a space that has nothing left.
func (c *cache) dropIfEmpty(space string) {
	if sc := c.spaces[space]; sc != nil && len(sc.fns) == 0 && len(sc.subs) == 0 && len(sc.types) == 0 && len(sc.cors) == 0 && len(sc.keys) == 0 {
		delete(c.spaces, space)
	}
}
