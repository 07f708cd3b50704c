"""The interceptor: reverse proxy, cold-start gate, counters, admin port."""
