package functions

// The etcd key layout of functions, relative to the store's prefix. It is
// the same as libkv.Space's until the models' packages own all of it:
//
//	spaces/<space>/functions/<functionId>            the function's JSON
//	spaces/<space>/uses/<functionId>/<subscriptionId>  empty: an index
//
// The uses keys index subscriptions by function. The subscriptions service
// writes them in the same transaction as a subscription, so that deleting a
// function can check in one transaction that nothing uses it.

// DefaultSpace is the space of the first-generation Configuration API.
const DefaultSpace = "default"

// SpaceRoot is the prefix of everything in space.
func SpaceRoot(space string) string { return "spaces/" + space + "/" }

// FunctionsPrefix is the prefix of the functions of space.
func FunctionsPrefix(space string) string { return SpaceRoot(space) + "functions/" }

// FunctionKey is the key of function id in space.
func FunctionKey(space, id string) string { return FunctionsPrefix(space) + id }

// UsesPrefix is the prefix of the index keys of the subscriptions that use
// function functionID.
func UsesPrefix(space, functionID string) string {
	return SpaceRoot(space) + "uses/" + functionID + "/"
}

// UseKey is the index key recording that subscription subscriptionID uses
// function functionID.
func UseKey(space, functionID, subscriptionID string) string {
	return UsesPrefix(space, functionID) + subscriptionID
}

// ValidateSpace checks a space name. It follows the rule of ids, since a
// name becomes a key segment and a URL segment the same way.
func ValidateSpace(name string) error { return ValidateID("space", name) }
