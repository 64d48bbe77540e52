package libkv

// DefaultSpace is the space the Configuration API of the contract works in.
const DefaultSpace = "default"

// Space is the key layout of one configuration space, relative to the
// store's prefix:
//
//	spaces/<space>/functions/<functionId>
//	spaces/<space>/subscriptions/<subscriptionId>
//	spaces/<space>/uses/<functionId>/<subscriptionId>
//	spaces/<space>/routes/<METHOD>/<subscriptionId>   (value: the path)
//
// The uses keys index subscriptions by function, written in the same
// transaction as the subscription, so deleting a function can check in one
// transaction that nothing uses it. The routes keys index http
// subscriptions by method, so a new route is checked against, and guarded
// by, only the routes it could conflict with.
type Space string

// Root is the prefix of everything in the space.
func (s Space) Root() string { return "spaces/" + string(s) + "/" }

// Functions is the prefix of the space's functions.
func (s Space) Functions() string { return s.Root() + "functions/" }

// Function is the key of one function.
func (s Space) Function(id string) string { return s.Functions() + id }

// Subscriptions is the prefix of the space's subscriptions.
func (s Space) Subscriptions() string { return s.Root() + "subscriptions/" }

// Subscription is the key of one subscription.
func (s Space) Subscription(id string) string { return s.Subscriptions() + id }

// Uses is the prefix of the index keys of the subscriptions of function id.
func (s Space) Uses(functionID string) string { return s.Root() + "uses/" + functionID + "/" }

// Use is the index key that records that subscription subID uses function
// functionID.
func (s Space) Use(functionID, subID string) string { return s.Uses(functionID) + subID }

// Routes is the prefix of the index keys of the http routes of a method.
func (s Space) Routes(method string) string { return s.Root() + "routes/" + method + "/" }

// Route is the index key of the http route of subscription subID.
func (s Space) Route(method, subID string) string { return s.Routes(method) + subID }
