// The HTTP/2 load generator and gRPC backend of loadtest/bench_peer.py; built by
// scripts/interop-binaries h2bench.
module wakeway.test/loadtest/h2bench

go 1.25

require google.golang.org/grpc v1.79.3

require (
	golang.org/x/net v0.48.0 // indirect
	golang.org/x/sys v0.39.0 // indirect
	golang.org/x/text v0.32.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20251202230838-ff82c1b0f217 // indirect
	google.golang.org/protobuf v1.36.10 // indirect
)
