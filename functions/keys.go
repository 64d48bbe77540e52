package functions

// DefaultSpace is the space of the first-generation Configuration API
// (/v1/functions, /v1/subscriptions) and of events sent to it.
const DefaultSpace = "default"

// The key layout of a space, relative to the store's prefix:
//
//	spaces/<space>/functions/<functionId>
//	spaces/<space>/uses/<functionId>/<subscriptionId>
//
// and, kept by the packages of the other resources, their own kinds under
// the same space root. The uses keys index subscriptions by function,
// written in the same transaction as the subscription, so deleting a
// function can check in one transaction that nothing uses it.

// SpacesRoot is the prefix of every space.
const SpacesRoot = "spaces/"

// SpaceRoot is the prefix of everything in a space.
func SpaceRoot(space string) string { return SpacesRoot + space + "/" }

// FunctionsPrefix is the prefix of a space's functions.
func FunctionsPrefix(space string) string { return SpaceRoot(space) + "functions/" }

// FunctionKey is the key of one function.
func FunctionKey(space, id string) string { return FunctionsPrefix(space) + id }

// UsesPrefix is the prefix of the index keys of the subscriptions of a
// function.
func UsesPrefix(space, functionID string) string {
	return SpaceRoot(space) + "uses/" + functionID + "/"
}

// UseKey is the index key that records that a subscription uses a function.
func UseKey(space, functionID, subscriptionID string) string {
	return UsesPrefix(space, functionID) + subscriptionID
}

// ValidateSpace checks a space name: it becomes a key segment and a URL
// segment, so it follows the rule of ids.
func ValidateSpace(space string) error { return ValidateID("space", space) }
