package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/daemon"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/ipvssync"
)

// post sends body to path on the socket and returns the status and the
// error message of the answer.
func post(t *testing.T, socket, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Post("http://gvsd"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength < 0 || len(resp.TransferEncoding) > 0 {
		t.Errorf("answer %s without a Content-Length (%v): internal/api/client cannot read it", resp.Status, resp.TransferEncoding)
	}
	b, _ := io.ReadAll(resp.Body)
	var ce wire.CommandError
	json.Unmarshal(b, &ce)
	return resp.StatusCode, ce.Msg
}

func commandsJSON(t *testing.T, cmds ...ipvs.Command) string {
	t.Helper()
	b, err := json.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRequestsAreStrict: a request with a field the API does not know, or
// with data after its JSON, is refused with a message naming what is
// wrong, and changes nothing; so is a real server the kernel would refuse.
func TestRequestsAreStrict(t *testing.T) {
	eng := proxy.New(nil, proxy.Options{}) // refuses sync daemons, after the request is read
	defer eng.Close(context.Background())
	socket, _ := serve(t, func(s *api.Server) {
		s.ServeDaemons(daemon.SyncDaemons(ipvssync.NewManager(slog.New(slog.DiscardHandler), eng)))
	})
	// A port free now: a fixed one collided with other packages' tests.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	svc := &ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: port}, Scheduler: "rr"}
	if code, msg := post(t, socket, "/v1/commands", commandsJSON(t, ipvs.Command{Op: ipvs.OpAddService, Service: svc})); code != http.StatusNoContent {
		t.Fatalf("adding a service: %d %s", code, msg)
	}
	addServer := func(addr string) string {
		return commandsJSON(t, ipvs.Command{Op: ipvs.OpAddDest, Service: svc,
			Dest: &ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: 9001, Method: ipvs.Masq, Weight: 3}})
	}

	tests := []struct {
		name     string
		path     string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"misspelt field", "/v1/commands", strings.Replace(addServer("127.0.0.2"), `"weight"`, `"weigth"`, 1),
			http.StatusBadRequest, `bad request: command 0: unknown field "weigth"`},
		{"misspelt field in the second command", "/v1/commands",
			strings.Replace(addServer("127.0.0.2"), `]`, `,{"op":"zero","sevrice":null}]`, 1),
			http.StatusBadRequest, `bad request: command 1: unknown field "sevrice"`},
		{"long misspelt field", "/v1/commands", strings.Replace(addServer("127.0.0.2"), `"weight"`, `"`+strings.Repeat("w", 3000)+`"`, 1),
			http.StatusBadRequest, `bad request: command 0: unknown field "` + strings.Repeat("w", 3000) + `"`},
		{"trailing data", "/v1/commands", addServer("127.0.0.2") + `{"op":"clear"}`,
			http.StatusBadRequest, "bad request: unexpected data after the JSON value"},
		{"not JSON", "/v1/commands", `[{"op":`, http.StatusBadRequest, "bad request: unexpected EOF"},
		{"broadcast real server", "/v1/commands", addServer("255.255.255.255"),
			http.StatusConflict, ipvs.ErrInvalid.Error()},
		{"misspelt sync daemon field", "/v1/daemons", `{"state":"master","mcast_ifn":"lo","syncid":1,"mcast_tll":1}`,
			http.StatusBadRequest, `bad request: unknown field "mcast_tll"`},
		{"a sync daemon the engine cannot run", "/v1/daemons", `{"state":"master","mcast_ifn":"lo","syncid":1}`,
			http.StatusConflict, "the proxy engine cannot synchronize connections (it terminates them; a connection cannot move to another director): run gvsd --engine xdp or ipvs for a sync daemon"},
		{"trailing data after a sync daemon", "/v1/daemons", `{"state":"master"} x`,
			http.StatusBadRequest, "bad request: unexpected data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := post(t, socket, tt.path, tt.body)
			if code != tt.wantCode || msg != tt.wantMsg {
				t.Errorf("got %d %q, want %d %q", code, msg, tt.wantCode, tt.wantMsg)
			}
		})
	}

	// Nothing of the refused requests was applied.
	got, err := client.New(socket).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Dests) != 0 {
		t.Errorf("the table changed: %+v", got)
	}
	// And a well-formed request still works.
	if code, msg := post(t, socket, "/v1/commands", addServer("127.0.0.2")+"\n"); code != http.StatusNoContent {
		t.Errorf("a valid request: %d %s", code, msg)
	}
}

// TestRefuseChanges: a server told to refuse changes (gvsd shutting down)
// answers every change 503 with the reason, and still serves the views.
func TestRefuseChanges(t *testing.T) {
	eng := proxy.New(nil, proxy.Options{})
	defer eng.Close(context.Background())
	socket, srv := serve(t, func(s *api.Server) {
		s.ServeDaemons(daemon.SyncDaemons(ipvssync.NewManager(slog.New(slog.DiscardHandler), eng)))
	})
	srv.RefuseChanges("gvsd is shutting down")
	const want = "gvsd is shutting down: it takes no more changes (read-only until it exits)"
	for _, path := range []string{"/v1/commands", "/v1/daemons"} {
		if code, msg := post(t, socket, path, `[]`); code != http.StatusServiceUnavailable || msg != want {
			t.Errorf("POST %s: %d %q, want 503 %q", path, code, msg, want)
		}
	}
	c := client.New(socket)
	if err := c.StopDaemon(context.Background(), "master"); err == nil || err.Error() != want {
		t.Errorf("DELETE /v1/daemons/master: %v, want %q", err, want)
	}
	if _, err := c.Services(context.Background()); err != nil {
		t.Errorf("GET /v1/services: %v", err)
	}
}

// TestNetmaskOmittedOrZero: a persistent service whose JSON leaves out
// "netmask" gets one template per client address, as ipvsadm without -M;
// "netmask": 0 is the /0 mask that ipvsadm's -M 0.0.0.0 asks for.
func TestNetmaskOmittedOrZero(t *testing.T) {
	socket, _ := serve(t, nil)
	var ports []uint16
	for range 2 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, uint16(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	body := func(port uint16) string {
		svc := &ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
			Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 60}
		return commandsJSON(t, ipvs.Command{Op: ipvs.OpAddService, Service: svc})
	}
	if !strings.Contains(body(ports[0]), `"netmask":0`) {
		t.Fatalf("the service's JSON has no netmask field: %s", body(ports[0]))
	}
	for _, b := range []string{strings.Replace(body(ports[0]), `,"netmask":0`, "", 1), body(ports[1])} {
		if code, msg := post(t, socket, "/v1/commands", b); code != http.StatusNoContent {
			t.Fatalf("adding %s: %d %s", b, code, msg)
		}
	}
	got, err := client.New(socket).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	masks := map[uint16]int{}
	for _, s := range got {
		masks[s.Port] = s.Netmask
	}
	if masks[ports[0]] != 32 || masks[ports[1]] != 0 {
		t.Errorf("netmasks: omitted %d, zero %d; want 32 and 0", masks[ports[0]], masks[ports[1]])
	}
}
