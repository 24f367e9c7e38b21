package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/porttest"
)

// get fetches path from the socket: the status and the body.
func get(t *testing.T, socket, path string) (int, []byte) {
	t.Helper()
	resp, b := getResponse(t, socket, path)
	return resp.StatusCode, b
}

// getResponse fetches path from the socket with net/http's client: the
// response (its body read and closed) and the body.
func getResponse(t *testing.T, socket, path string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get("http://gvsd" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestServicesFiltered: GET /v1/services?service=KEY answers only that
// service, an empty list for one that does not exist, and 400 with what
// is wrong for a KEY that does not parse or a parameter it does not know;
// without the parameter it is the whole table.
func TestServicesFiltered(t *testing.T) {
	socket, _ := serve(t, nil)
	lo := netip.MustParseAddr("127.0.0.1")
	var keys []ipvs.ServiceKey
	var cmds []ipvs.Command
	for range 3 {
		k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: lo, Port: porttest.Free(t, "tcp4", lo)}
		keys = append(keys, k)
		cmds = append(cmds,
			ipvs.Command{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: k, Scheduler: "rr"}},
			ipvs.Command{Op: ipvs.OpAddDest, Service: &ipvs.Service{ServiceKey: k},
				Dest: &ipvs.Dest{Addr: netip.MustParseAddr("127.0.0.2"), Port: k.Port, Method: ipvs.Masq, Weight: 1}})
	}
	c := client.New(socket)
	if err := c.Exec(context.Background(), cmds); err != nil {
		t.Fatal(err)
	}

	list := func(query string) []ipvs.ServiceStatus {
		t.Helper()
		code, body := get(t, socket, "/v1/services"+query)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/services%s: %d %s", query, code, body)
		}
		var v []ipvs.ServiceStatus
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("GET /v1/services%s: %v in %s", query, err, body)
		}
		return v
	}
	if got := list(""); len(got) != 3 {
		t.Errorf("the whole table: %d services, want 3", len(got))
	}
	got := list("?" + url.Values{"service": {keys[1].String()}}.Encode())
	if len(got) != 1 || got[0].ServiceKey != keys[1] || len(got[0].Dests) != 1 || got[0].Scheduler != "rr" {
		t.Errorf("service=%s: %+v, want that service alone with its real server", keys[1], got)
	}
	missing := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: lo, Port: keys[1].Port}
	if got := list("?" + url.Values{"service": {missing.String()}}.Encode()); got == nil || len(got) != 0 {
		t.Errorf("service=%s, which does not exist: %+v, want []", missing, got)
	}

	// The client's Service says the same.
	st, ok, err := c.Service(context.Background(), keys[2])
	if err != nil || !ok || st.ServiceKey != keys[2] {
		t.Errorf("Client.Service(%s) = %v, %v, %v", keys[2], st.ServiceKey, ok, err)
	}
	if _, ok, err := c.Service(context.Background(), missing); err != nil || ok {
		t.Errorf("Client.Service(%s), which does not exist = %v, %v; want false, nil", missing, ok, err)
	}

	for _, tt := range []struct{ query, msg string }{
		{"?service=" + url.QueryEscape("TCP 127.0.0.1"), `bad request: service "TCP 127.0.0.1": "127.0.0.1" is not ADDR:PORT (an IPv6 address goes in brackets) (want "TCP|UDP|SCTP ADDR:PORT", "FWM MARK" or "FWM MARK IPv6")`},
		{"?service=" + url.QueryEscape("FWM 0"), `bad request: service "FWM 0": the firewall mark "0" is not a number from 1 to 4294967295 (want "TCP|UDP|SCTP ADDR:PORT", "FWM MARK" or "FWM MARK IPv6")`},
		{"?service=", `bad request: service "": unknown protocol "" (want "TCP|UDP|SCTP ADDR:PORT", "FWM MARK" or "FWM MARK IPv6")`},
		{"?service=FWM+1&service=FWM+2", "bad request: service given more than once"},
		{"?servce=FWM+1", `bad request: unknown query parameter "servce" (the one known is "service")`},
		{"?service=%zz", `bad request: query: invalid URL escape "%zz"`},
	} {
		code, body := get(t, socket, "/v1/services"+tt.query)
		var ce wire.CommandError
		json.Unmarshal(body, &ce)
		if code != http.StatusBadRequest || ce.Msg != tt.msg {
			t.Errorf("GET /v1/services%s: %d %q, want 400 %q", tt.query, code, ce.Msg, tt.msg)
		}
	}
}

// TestServicesStreamed: a table whose status is longer than one chunk of
// the answer (300 services of 4 real servers, about 400 KB) is streamed,
// delimited by the end of the connection, with the bytes encoding/json
// writes; the client reads it as the director holds it, and a short
// table still comes with its Content-Length.
func TestServicesStreamed(t *testing.T) {
	lo := netip.MustParseAddr("127.81.0.1")
	port := porttest.Free(t, "tcp4", lo)
	eng := proxy.New(nil, proxy.Options{})
	t.Cleanup(func() { eng.Close(context.Background()) })
	dir := director.New(eng, slog.New(slog.DiscardHandler))
	socket := filepath.Join(t.TempDir(), "gvsd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.NewServer(dir, slog.New(slog.DiscardHandler), nil).Listen(ctx, socket) }()
	t.Cleanup(func() { cancel(); <-done })
	waitDial(t, socket)
	c := client.New(socket)

	raw := func() (*http.Response, []byte) {
		t.Helper()
		return getResponse(t, socket, "/v1/services")
	}
	if resp, body := raw(); resp.ContentLength != int64(len(body)) || string(body) != "[]\n" {
		t.Errorf("empty table: Content-Length %d, body %q; want []", resp.ContentLength, body)
	}

	var cmds []ipvs.Command
	for i := range 300 {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{127, 81, byte(i >> 8), byte(1 + i)}), Port: port}, Scheduler: "wrr"}
		cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for j := range 4 {
			d := ipvs.Dest{Addr: netip.AddrFrom4([4]byte{127, 82, 0, byte(1 + 4*i%64 + j)}), Port: port, Method: ipvs.Masq, Weight: int32(j)}
			cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
		}
		if i == 0 {
			if err := c.Exec(context.Background(), cmds); err != nil {
				t.Fatal(err)
			}
			cmds = nil
			if resp, body := raw(); resp.ContentLength != int64(len(body)) {
				t.Errorf("one service: Content-Length %d for %d bytes", resp.ContentLength, len(body))
			}
		}
	}
	if err := c.Exec(context.Background(), cmds); err != nil {
		t.Fatal(err)
	}
	want := dir.Services()
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := raw()
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Errorf("300 services: Content-Length %d, Transfer-Encoding %v, close %v; want neither, delimited by the close",
			resp.ContentLength, resp.TransferEncoding, resp.Close)
	}
	if string(body) != string(wantJSON)+"\n" {
		t.Errorf("300 services: %d bytes, not the %d encoding/json writes", len(body), len(wantJSON)+1)
	}
	got, err := c.Services(context.Background())
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Client.Services: %d services, %v; want the director's %d", len(got), err, len(want))
	}
}
