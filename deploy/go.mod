module github.com/event-gateway/event-gateway/deploy

go 1.26.0
