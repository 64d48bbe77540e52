package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

// BenchmarkFunctionWrite measures what recording a change costs a
// configuration write: a function created and deleted through the
// functions service on the plain store, then on the store with the
// history hook. Compare the two in one run.
func BenchmarkFunctionWrite(b *testing.B) {
	providers := functions.NewRegistry(httpfn.New(httpfn.Options{}))
	for _, recorded := range []bool{false, true} {
		name := "plain"
		if recorded {
			name = "recorded"
		}
		b.Run(name, func(b *testing.B) {
			st := etcd.Store(b)
			if recorded {
				st = st.WithTxnHook(history.New(st, history.Options{MaxEntries: 100}).Hook)
			}
			svc := functions.NewService(st, "bench", providers)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("f%d", i)
				i++
				if _, err := svc.Create(ctx, functions.Function{ID: id, Provider: functions.Provider{Type: "http", Config: json.RawMessage(`{"url":"http://127.0.0.1:9/"}`)}}); err != nil {
					b.Fatal(err)
				}
				if err := svc.Delete(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
