// Package keys holds the access keys of a space: ingest keys, which
// events sent to the space must carry once it has any, and configuration
// keys, tokens of the Configuration API that reach that space alone.
//
// A key is a random secret shown once, in the answer to its creation. The
// store keeps its SHA-256 digest only: the secrets are 256 random bits, so
// a fast digest is as hard to reverse as a slow one, and checking a key
// on every event costs one hash.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// Kinds of keys.
const (
	// Ingest keys let events into a space.
	Ingest = "ingest"
	// Config keys let Configuration API requests into a space.
	Config = "config"
)

// Key is an access key of a space as clients see it. Secret is set only
// in the answer to its creation.
type Key struct {
	Space     string            `json:"space"`
	ID        string            `json:"keyId"`
	Kind      string            `json:"kind"`
	Name      string            `json:"name,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Secret    string            `json:"key,omitempty"`
}

// Stored is what the store holds of a key: its digest, never its secret.
type Stored struct {
	ID        string            `json:"keyId"`
	Kind      string            `json:"kind"`
	Name      string            `json:"name,omitempty"`
	Digest    string            `json:"sha256"`
	CreatedAt time.Time         `json:"createdAt"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// secretPrefix marks the gateway's keys, so a leaked one is recognizable
// by secret scanners.
const secretPrefix = "egk_"

// Digest returns the digest under which a secret is stored.
func Digest(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// Prefix is the prefix of a space's keys.
func Prefix(space string) string { return functions.SpaceRoot(space) + "keys/" }

// StoreKey is the store key of one access key.
func StoreKey(space, id string) string { return Prefix(space) + id }

// MaxNameLen bounds a key's name.
const MaxNameLen = 256

// Service stores the keys of every space; In gives the view of one.
type Service struct{ kv *libkv.Store }

// NewService returns a Service on store kv.
func NewService(kv *libkv.Store) *Service { return &Service{kv: kv} }

// In returns the keys of one space.
func (s *Service) In(space string) *Space { return &Space{kv: s.kv, space: space} }

// Space stores the keys of one space.
type Space struct {
	kv    *libkv.Store
	space string
}

// Create makes a new key of the given kind and returns it with its
// secret, which is not kept and cannot be shown again.
func (s *Space) Create(ctx context.Context, k Key) (Key, error) {
	if k.Kind != Ingest && k.Kind != Config {
		return Key{}, errkind.New(errkind.Invalid, "kind %q is not %q or %q", k.Kind, Ingest, Config)
	}
	if k.ID != "" || k.Secret != "" {
		return Key{}, errkind.New(errkind.Invalid, "keyId and key are made by the gateway")
	}
	if len(k.Name) > MaxNameLen {
		return Key{}, errkind.New(errkind.Invalid, "name is longer than %d bytes", MaxNameLen)
	}
	if err := functions.ValidateMetadata(k.Metadata); err != nil {
		return Key{}, err
	}
	var raw [32]byte
	rand.Read(raw[:])
	var id [8]byte
	rand.Read(id[:])
	k.Space, k.ID = s.space, hex.EncodeToString(id[:])
	k.Secret = secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k.CreatedAt = time.Now().UTC().Truncate(time.Second)
	d := Digest(k.Secret)
	val, err := json.Marshal(Stored{ID: k.ID, Kind: k.Kind, Name: k.Name, Digest: hex.EncodeToString(d[:]), CreatedAt: k.CreatedAt, Metadata: k.Metadata})
	if err != nil {
		return Key{}, fmt.Errorf("encode key: %w", err)
	}
	ok, err := s.kv.Create(ctx, StoreKey(s.space, k.ID), val)
	if err != nil {
		return Key{}, err
	}
	if !ok {
		return Key{}, errkind.New(errkind.Conflict, "key id collision, try again")
	}
	return k, nil
}

// List returns the keys of the space, without secrets.
func (s *Space) List(ctx context.Context) ([]Key, error) {
	kvs, _, err := s.kv.List(ctx, Prefix(s.space))
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(kvs))
	for _, kv := range kvs {
		var st Stored
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("decode key at %s: %w", kv.Key, err)
		}
		out = append(out, Key{Space: s.space, ID: st.ID, Kind: st.Kind, Name: st.Name, CreatedAt: st.CreatedAt, Metadata: st.Metadata})
	}
	return out, nil
}

// Delete revokes a key.
func (s *Space) Delete(ctx context.Context, id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return errkind.New(errkind.NotFound, "key not found")
	}
	err := s.kv.Delete(ctx, StoreKey(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return errkind.New(errkind.NotFound, "key %q not found", id)
	}
	return err
}
