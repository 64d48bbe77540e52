// Package eventtypes holds the event types of a space.
package eventtypes

import "github.com/event-gateway/event-gateway/functions"

// Key is the key of an event type.
func Key(space, name string) string { return functions.SpaceRoot(space) + "eventtypes/" + name }

// UsesPrefix is the prefix of the index keys of the subscriptions that use
// an event type.
func UsesPrefix(space, name string) string {
	return functions.SpaceRoot(space) + "typeuses/" + name + "/"
}

// UseKey is the index key recording that a subscription uses an event type.
func UseKey(space, name, subscriptionID string) string {
	return UsesPrefix(space, name) + subscriptionID
}
