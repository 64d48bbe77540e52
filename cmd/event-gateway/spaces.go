package main

import (
	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// spaceServices gives the Configuration API the services of each space.
// They are views of one store: making one per request costs nothing.
type spaceServices struct {
	store     *libkv.Store
	providers *functions.Registry
	subs      *subscriptions.Service
	types     *eventtypes.Service
	cors      *cors.Service
	keys      *keys.Service
}

func newSpaceServices(store *libkv.Store, providers *functions.Registry) *spaceServices {
	return &spaceServices{
		store:     store,
		providers: providers,
		subs:      subscriptions.NewService(store),
		types:     eventtypes.NewService(store),
		cors:      cors.NewService(store),
		keys:      keys.NewService(store),
	}
}

func (s *spaceServices) Functions(space string) api.FunctionService {
	return functions.NewService(s.store, space, s.providers)
}

func (s *spaceServices) Subscriptions(space string) api.SpaceSubscriptionService {
	return s.subs.In(space)
}

func (s *spaceServices) EventTypes(space string) api.EventTypeService { return s.types.In(space) }

func (s *spaceServices) CORS(space string) api.CORSService { return s.cors.In(space) }

func (s *spaceServices) Keys(space string) api.KeyService { return s.keys.In(space) }
