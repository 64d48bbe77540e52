package subscriptions

import "github.com/event-gateway/event-gateway/functions"

// The key layout of subscriptions in a space, relative to the store's
// prefix:
//
//	spaces/<space>/subscriptions/<subscriptionId>
//	spaces/<space>/routes/<METHOD>/<subscriptionId>   (value: the path)
//	spaces/<space>/eventroutes/<eventType>/<METHOD>/<subscriptionId>   (value: the path)
//
// The routes keys index http subscriptions by method, so a new route is
// checked against, and guarded by, only the routes it could conflict with.
// The eventroutes keys do the same for synchronous subscriptions to custom
// events, whose routes conflict only within one event type.

// Prefix is the prefix of a space's subscriptions.
func Prefix(space string) string { return functions.SpaceRoot(space) + "subscriptions/" }

// Key is the key of one subscription.
func Key(space, id string) string { return Prefix(space) + id }

// RoutesPrefix is the prefix of the index keys of a method's http routes.
func RoutesPrefix(space, method string) string {
	return functions.SpaceRoot(space) + "routes/" + method + "/"
}

// RouteKey is the index key of the http route of a subscription.
func RouteKey(space, method, id string) string { return RoutesPrefix(space, method) + id }

// EventRoutesPrefix is the prefix of the index keys of the routes of
// synchronous subscriptions to an event type on a method.
func EventRoutesPrefix(space, eventType, method string) string {
	return functions.SpaceRoot(space) + "eventroutes/" + eventType + "/" + method + "/"
}

// routesPrefix returns the route index a subscription is checked against
// and written to, or "" for those without a route (asynchronous ones and
// invoke).
func routesPrefix(space string, sub *Subscription) string {
	switch {
	case !sub.IsSync() || sub.Event == EventInvoke:
		return ""
	case sub.Event == EventHTTP:
		return RoutesPrefix(space, sub.Method)
	default:
		return EventRoutesPrefix(space, sub.Event, sub.Method)
	}
}
