package api

import (
	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// StoreSpaces gives the Configuration API the services of each space on
// one store. They are views of the store: making one per request costs
// nothing.
type StoreSpaces struct {
	store     *libkv.Store
	providers *functions.Registry
	subs      *subscriptions.Service
	types     *eventtypes.Service
	cors      *cors.Service
	keys      *keys.Service
}

// NewStoreSpaces returns the services of every space on store, accepting
// the provider types of providers, with subs as the subscriptions service
// (nil: a new one).
func NewStoreSpaces(store *libkv.Store, providers *functions.Registry, subs *subscriptions.Service) *StoreSpaces {
	if subs == nil {
		subs = subscriptions.NewService(store)
	}
	return &StoreSpaces{
		store:     store,
		providers: providers,
		subs:      subs,
		types:     eventtypes.NewService(store),
		cors:      cors.NewService(store),
		keys:      keys.NewService(store),
	}
}

func (s *StoreSpaces) Functions(space string) FunctionService {
	return functions.NewService(s.store, space, s.providers)
}

func (s *StoreSpaces) Subscriptions(space string) SpaceSubscriptionService {
	return s.subs.In(space)
}

func (s *StoreSpaces) EventTypes(space string) EventTypeService { return s.types.In(space) }

func (s *StoreSpaces) CORS(space string) CORSService { return s.cors.In(space) }

func (s *StoreSpaces) Keys(space string) KeyService { return s.keys.In(space) }
