package subscriptions_test

import (
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// TestKeyLayout pins the etcd key layout: data written by earlier releases
// is read through it, so a change here is a data migration.
func TestKeyLayout(t *testing.T) {
	for got, want := range map[string]string{
		functions.FunctionKey("default", "f"):        "spaces/default/functions/f",
		functions.FunctionsPrefix("default"):         "spaces/default/functions/",
		functions.UseKey("default", "f", "s"):        "spaces/default/uses/f/s",
		functions.UsesPrefix("default", "f"):         "spaces/default/uses/f/",
		functions.SpaceRoot("b"):                     "spaces/b/",
		subscriptions.Key("default", "s"):            "spaces/default/subscriptions/s",
		subscriptions.Prefix("b"):                    "spaces/b/subscriptions/",
		subscriptions.RoutesPrefix("default", "GET"): "spaces/default/routes/GET/",
		subscriptions.RouteKey("b", "PUT", "s"):      "spaces/b/routes/PUT/s",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
}

// TestIDsPerSpace: the default space derives ids as before spaces existed,
// so stored subscriptions keep theirs; any other space gets ids of its own.
func TestIDsPerSpace(t *testing.T) {
	norm := func(space string, s subscriptions.Subscription) string {
		if _, err := s.Normalize(space); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	httpSub := subscriptions.Subscription{Event: "http", FunctionID: "f", Method: "GET", Path: "/a"}
	custom := subscriptions.Subscription{Event: "user.created", FunctionID: "f", Path: "/"}
	// The ids the releases before spaces stored for these two.
	if got, want := norm("default", httpSub), "cc1dac08-fd92-5700-8431-1cab877e8a22"; got != want {
		t.Errorf("http subscription in the default space: id %s, want %s as before", got, want)
	}
	if got, want := norm("default", custom), "8782e59c-4d37-5d4a-9d56-cae2d62231f6"; got != want {
		t.Errorf("custom subscription in the default space: id %s, want %s as before", got, want)
	}
	for _, s := range []subscriptions.Subscription{httpSub, custom} {
		d, a, b := norm("default", s), norm("a", s), norm("b", s)
		if d == a || a == b || d == b {
			t.Errorf("%s: ids default %s, a %s, b %s: want three different", s.Event, d, a, b)
		}
		if again := norm("a", s); again != a {
			t.Errorf("%s: id in a not stable: %s then %s", s.Event, a, again)
		}
	}
}
