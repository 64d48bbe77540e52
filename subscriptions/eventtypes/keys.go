package eventtypes

import "github.com/event-gateway/event-gateway/functions"

// The key layout of event types in a space, relative to the store's
// prefix:
//
//	spaces/<space>/eventtypes/<name>                      (value: the event type)
//	spaces/<space>/typeuses/<name>/<subscriptionId>       (no value)
//	spaces/<space>/uses/<authorizerId>/eventtype:<name>   (no value)
//
// The typeuses keys index subscriptions by event type: the subscriptions
// service writes and deletes them in the transactions that create and
// delete subscriptions, so deleting an event type can check in one
// transaction that no subscription uses it. The uses key records that an
// event type uses a function as its authorizer, in the functions
// package's index, so deleting that function is refused while it does.

// Prefix is the prefix of a space's event types.
func Prefix(space string) string { return functions.SpaceRoot(space) + "eventtypes/" }

// Key is the key of one event type. A subscriptions transaction that needs
// the event type to exist adds libkv.Exists(Key(space, name)) to its
// conditions, except for built-in types (IsBuiltin), which exist whether
// stored or not.
func Key(space, name string) string { return Prefix(space) + name }

// UsesPrefix is the prefix of the index keys of the subscriptions of an
// event type.
func UsesPrefix(space, name string) string {
	return functions.SpaceRoot(space) + "typeuses/" + name + "/"
}

// UseKey is the index key that records that a subscription uses an event
// type.
func UseKey(space, name, subscriptionID string) string {
	return UsesPrefix(space, name) + subscriptionID
}

// authorizerUsePrefix marks the function-use index keys written for event
// types, so they never collide with subscription ids (UUIDs).
const authorizerUsePrefix = "eventtype:"

// AuthorizerUseKey is the function-use index key that records that event
// type name uses function authorizerID as its authorizer.
func AuthorizerUseKey(space, authorizerID, name string) string {
	return functions.UseKey(space, authorizerID, authorizerUsePrefix+name)
}
