package cors

import "github.com/event-gateway/event-gateway/functions"

// The key layout of CORS configurations in a space, relative to the
// store's prefix:
//
//	spaces/<space>/cors/<corsId>

// Prefix is the prefix of a space's CORS configurations.
func Prefix(space string) string { return functions.SpaceRoot(space) + "cors/" }

// Key is the key of one CORS configuration.
func Key(space, id string) string { return Prefix(space) + id }
