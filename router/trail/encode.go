package trail

import (
	"strconv"

	"github.com/event-gateway/event-gateway/router/event"
)

// The trail writes its messages by hand, as the router writes envelopes:
// encoding/json's reflection was most of the recorder's own cost. What it
// writes is what encoding/json reads into message (encode_test.go).

// appendMessage appends the message of recs, records of one event, as
// JSON.
func appendMessage(b []byte, space, eventID string, recs []*record) []byte {
	b = append(b, `{"space":`...)
	b = event.AppendJSONString(b, space)
	b = append(b, `,"eventId":`...)
	b = event.AppendJSONString(b, eventID)
	b = append(b, `,"records":[`...)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecord(b, r)
	}
	return append(b, "]}"...)
}

// appendRecord appends r as JSON, leaving out empty fields as
// encoding/json's omitempty does.
func appendRecord(b []byte, r *record) []byte {
	b = append(b, `{"kind":`...)
	b = event.AppendJSONString(b, r.Kind)
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, r.At, 10)
	b = appendStr(b, "type", r.Type)
	if len(r.Subscribers) > 0 {
		b = append(b, `,"subscribers":[`...)
		for i, s := range r.Subscribers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"subscriptionId":`...)
			b = event.AppendJSONString(b, s.SubscriptionID)
			b = append(b, `,"functionId":`...)
			b = event.AppendJSONString(b, s.FunctionID)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStr(b, "subscriptionId", r.SubscriptionID)
	b = appendStr(b, "functionId", r.FunctionID)
	b = appendStr(b, "reason", r.Reason)
	b = appendInt(b, "attempt", int64(r.Attempt))
	b = appendInt(b, "tookUs", r.TookUs)
	b = appendStr(b, "result", r.Result)
	b = appendStr(b, "error", r.Error)
	b = appendStr(b, "outcome", r.Outcome)
	b = appendInt(b, "next", r.Next)
	b = appendStr(b, "instance", r.Instance)
	return append(b, '}')
}

func appendStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return event.AppendJSONString(b, v)
}

func appendInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}
