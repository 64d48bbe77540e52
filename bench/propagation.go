package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// propResult is the configuration propagation latency: from the start of
// POST /v1/subscriptions on the first instance to the new route answering
// something other than 404 on each instance.
type propResult struct {
	trials    int
	instances int
	all       vegeta.LatencyMetrics
	per       []vegeta.LatencyMetrics
	timeouts  int
	postP50   time.Duration // the POST alone
}

const propTimeout = 10 * time.Second

// propagation creates trials http subscriptions, one at a time, through the
// first gateway's Configuration API, and polls the new route on every
// gateway about once a millisecond until it is routable.
func propagation(ctx context.Context, gws []*gateway, trials int) (propResult, error) {
	progress("config propagation: %d subscriptions, each polled on %d instances", trials, len(gws))
	res := propResult{trials: trials, instances: len(gws), per: make([]vegeta.LatencyMetrics, len(gws))}
	var post vegeta.LatencyMetrics
	for i := range trials {
		path := fmt.Sprintf("/prop/%d", i)
		lat := make([]time.Duration, len(gws))
		var wg sync.WaitGroup
		start := time.Now()
		for j, g := range gws {
			wg.Go(func() {
				url := g.events + path
				for {
					code, _, err := get(ctx, url)
					if err == nil && code != http.StatusNotFound {
						lat[j] = time.Since(start)
						return
					}
					if ctx.Err() != nil || time.Since(start) > propTimeout {
						lat[j] = -1
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		body := fmt.Sprintf(`{"functionId":"bench","event":"http","method":"GET","path":%q}`, path)
		err := postJSON(ctx, gws[0].config+"/v1/subscriptions", body)
		post.Add(time.Since(start))
		wg.Wait()
		if err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for j, d := range lat {
			if d < 0 {
				res.timeouts++
				continue
			}
			res.all.Add(d)
			res.per[j].Add(d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.postP50 = post.Quantile(0.5)
	return res, nil
}
