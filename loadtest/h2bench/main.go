// h2bench: the HTTP/2 load generator and gRPC backend of loadtest/bench_peer.py.
//
// A Python generator would be the bottleneck at these rates, so the HTTP/2 sections of the peer
// benchmark drive the proxies with this program instead. It is built from the Go module proxy by
// scripts/interop-binaries (h2bench) and cached with the interop tier's other Go programs.
//
//	h2bench h2c   -url http://ADDR:PORT/b [-host NAME] -connections 4 -streams 16 -seconds 10
//	h2bench h2c   -url ... -rate 1000 -seconds 10 -connections 4
//	h2bench grpc  -target ADDR:PORT [-host NAME] -rate 1000 -seconds 10 -connections 4
//	h2bench serve-grpc -listen ADDR:PORT
//
// h2c is HTTP/2 over cleartext with prior knowledge (no Upgrade): each connection is its own
// transport, so -connections is exactly the number of TCP connections opened. Without -rate the
// load is closed loop (uncapped): -streams requests in flight on each connection, each sent as
// soon as the previous one on its slot completed, for -seconds. With -rate it is open loop: one
// request every 1/rate seconds, round robin over the connections, whatever is in flight.
//
// grpc sends unary calls to /bench.Echo/Unary (a 16-byte message, answered with the same) with
// grpc-go, over -connections client connections, open loop at -rate. serve-grpc is the backend:
// grpc-go serving that one method.
//
// The result is one JSON object on stdout: sent, ok, errors, error_samples (up to 5 messages),
// dials (TCP connections opened), elapsed (s) and, in open loop, latencies (s, one per successful
// request, from the request's start to its response's end). Every loop is bounded in count and
// time; a request not answered within 10 s is an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	requestTimeout = 10 * time.Second
	maxSeconds     = 120
	maxRate        = 100_000
	maxInFlight    = 10_000 // open loop: a request due beyond this many in flight is an error
	method         = "/bench.Echo/Unary"
)

type result struct {
	Sent         int64     `json:"sent"`
	OK           int64     `json:"ok"`
	Errors       int64     `json:"errors"`
	ErrorSamples []string  `json:"error_samples"`
	Dials        int64     `json:"dials"`
	Elapsed      float64   `json:"elapsed"`
	Latencies    []float64 `json:"latencies,omitempty"`
}

type recorder struct {
	mu        sync.Mutex
	res       result
	latencies []float64
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Errors++
	if len(r.res.ErrorSamples) < 5 {
		r.res.ErrorSamples = append(r.res.ErrorSamples, err.Error())
	}
}

func (r *recorder) ok(latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.OK++
	r.latencies = append(r.latencies, latency.Seconds())
}

// rawCodec passes message bytes through: no generated code is needed for one echo method. It
// keeps the name "proto", so calls carry content-type application/grpc as generated stubs' do.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// A protobuf message with field 1 (bytes) holding 14 bytes: 16 bytes in all.
var message = append([]byte{0x0a, 14}, []byte("wakeway-h2bench")[:14]...)

func dialer(dials *int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		atomic.AddInt64(dials, 1)
		return d.DialContext(ctx, network, addr)
	}
}

// h2cClients returns n HTTP/2-only clients, one connection each (prior knowledge).
func h2cClients(n int, dials *int64) []*http.Client {
	clients := make([]*http.Client, n)
	for i := range clients {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true) // and not HTTP/1: h2c with prior knowledge
		t := &http.Transport{
			Protocols:           &protocols,
			DialContext:         dialer(dials),
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		}
		clients[i] = &http.Client{Transport: t, Timeout: requestTimeout}
	}
	return clients
}

func h2cRequest(client *http.Client, url, host string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("answered over %s, not HTTP/2", resp.Proto)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// closedLoop keeps `slots` requests in flight until `seconds` have passed.
func closedLoop(rec *recorder, slots int, seconds float64, send func(slot int) error) {
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	var sent, ok int64
	for s := 0; s < slots; s++ {
		wg.Add(1)
		go func(slot int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				atomic.AddInt64(&sent, 1)
				if err := send(slot); err != nil {
					rec.fail(err)
				} else {
					atomic.AddInt64(&ok, 1)
				}
			}
		}(s)
	}
	wg.Wait()
	rec.res.Sent, rec.res.OK = sent, ok
}

// openLoop sends rate*seconds requests, request i at start + i/rate, whatever is in flight.
func openLoop(rec *recorder, rate, seconds float64, send func(i int) error) {
	total := int(rate * seconds)
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	var inFlight int64
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		rec.res.Sent++
		if atomic.LoadInt64(&inFlight) >= maxInFlight {
			rec.fail(errors.New("too many requests in flight"))
			continue
		}
		atomic.AddInt64(&inFlight, 1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer atomic.AddInt64(&inFlight, -1)
			began := time.Now()
			if err := send(i); err != nil {
				rec.fail(err)
				return
			}
			rec.ok(time.Since(began))
		}(i)
	}
	wg.Wait()
}

func runH2C(args []string) (result, error) {
	fs := flag.NewFlagSet("h2c", flag.ExitOnError)
	url := fs.String("url", "", "http://ADDR:PORT/PATH")
	host := fs.String("host", "", ":authority (default: from the URL)")
	connections := fs.Int("connections", 4, "TCP connections")
	streams := fs.Int("streams", 16, "closed loop: requests in flight per connection")
	rate := fs.Float64("rate", 0, "open loop: requests per second (0: closed loop)")
	seconds := fs.Float64("seconds", 10, "duration")
	_ = fs.Parse(args)
	if err := bounded(*connections, *streams, *rate, *seconds); err != nil {
		return result{}, err
	}
	if *url == "" {
		return result{}, errors.New("-url is required")
	}
	rec := &recorder{res: result{ErrorSamples: []string{}}}
	clients := h2cClients(*connections, &rec.res.Dials)
	// One request per connection first: each is open before the clock starts.
	for _, c := range clients {
		if err := h2cRequest(c, *url, *host); err != nil {
			return result{}, fmt.Errorf("first request: %w", err)
		}
	}
	began := time.Now()
	if *rate > 0 {
		openLoop(rec, *rate, *seconds, func(i int) error {
			return h2cRequest(clients[i%len(clients)], *url, *host)
		})
	} else {
		closedLoop(rec, *connections**streams, *seconds, func(slot int) error {
			return h2cRequest(clients[slot%len(clients)], *url, *host)
		})
	}
	rec.res.Elapsed = time.Since(began).Seconds()
	rec.res.Latencies = rec.latencies
	return rec.res, nil
}

func runGRPC(args []string) (result, error) {
	fs := flag.NewFlagSet("grpc", flag.ExitOnError)
	target := fs.String("target", "", "ADDR:PORT")
	host := fs.String("host", "", ":authority (default: the target)")
	connections := fs.Int("connections", 4, "client connections")
	rate := fs.Float64("rate", 1000, "requests per second")
	seconds := fs.Float64("seconds", 10, "duration")
	_ = fs.Parse(args)
	if err := bounded(*connections, 1, *rate, *seconds); err != nil {
		return result{}, err
	}
	if *target == "" || *rate <= 0 {
		return result{}, errors.New("-target and a positive -rate are required")
	}
	rec := &recorder{res: result{ErrorSamples: []string{}}}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer(&rec.res.Dials)(ctx, "tcp", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	}
	if *host != "" {
		opts = append(opts, grpc.WithAuthority(*host))
	}
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		conn, err := grpc.NewClient("passthrough:///"+*target, opts...)
		if err != nil {
			return result{}, err
		}
		defer conn.Close()
		conns[i] = conn
	}
	call := func(conn *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		in := message
		var out []byte
		if err := conn.Invoke(ctx, method, &in, &out); err != nil {
			return err
		}
		if string(out) != string(message) {
			return fmt.Errorf("echoed %q", out)
		}
		return nil
	}
	for _, c := range conns {
		if err := call(c); err != nil {
			return result{}, fmt.Errorf("first call: %w", err)
		}
	}
	began := time.Now()
	openLoop(rec, *rate, *seconds, func(i int) error { return call(conns[i%len(conns)]) })
	rec.res.Elapsed = time.Since(began).Seconds()
	rec.res.Latencies = rec.latencies
	return rec.res, nil
}

func serveGRPC(args []string) error {
	fs := flag.NewFlagSet("serve-grpc", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "ADDR:PORT")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "serving gRPC on %s\n", ln.Addr())
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Unary",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				return &in, nil
			},
		}},
	}, struct{}{})
	return s.Serve(ln)
}

func bounded(connections, streams int, rate, seconds float64) error {
	if connections < 1 || connections > 1000 || streams < 1 || streams > 1000 {
		return errors.New("keep it bounded: 1..1000 connections and streams")
	}
	if seconds <= 0 || seconds > maxSeconds || rate < 0 || rate > maxRate {
		return fmt.Errorf("keep it bounded: up to %d s and %d req/s", maxSeconds, maxRate)
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: h2bench h2c|grpc|serve-grpc [flags]")
		os.Exit(2)
	}
	var res result
	var err error
	switch os.Args[1] {
	case "h2c":
		res, err = runH2C(os.Args[2:])
	case "grpc":
		res, err = runGRPC(os.Args[2:])
	case "serve-grpc":
		err = serveGRPC(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2bench:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		os.Exit(1)
	}
}
