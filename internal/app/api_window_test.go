package app

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
)

// TestGRPCServerSendsNoBDPPings checks on the wire what grpcStreamWindow
// and grpcConnWindow are for: the server advertises the static windows and
// answers a unary call without pinging the client (grpc-go's dynamic
// windows send a bandwidth-delay PING when request data arrives).
func TestGRPCServerSendsNoBDPPings(t *testing.T) {
	srv := grpc.NewServer(grpcTransportOptions()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// A unary call to a method the server does not have: grpc-go reads
	// the request and answers Unimplemented in trailers.
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/no.Such/Method"},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, append([]byte{0, 0, 0, 0, 4}, "body"...)); err != nil {
		t.Fatal(err)
	}

	var streamWindow, connUpdate uint32
	for ended := false; !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's frames before the call ended: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				streamWindow = v
			}
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && connUpdate == 0 {
				connUpdate = f.Increment
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				t.Fatalf("the server sent a PING while serving a call (%x): dynamic flow-control windows are on", f.Data)
			}
		case *http2.HeadersFrame:
			ended = f.StreamID == 1 && f.StreamEnded()
		}
	}
	if streamWindow != grpcStreamWindow {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE = %d, want %d", streamWindow, grpcStreamWindow)
	}
	// The connection window starts at HTTP/2's 65535 bytes; the server
	// raises it with its first WINDOW_UPDATE.
	if got := connUpdate + 65535; got != grpcConnWindow {
		t.Errorf("connection window = %d (first WINDOW_UPDATE %d), want %d", got, connUpdate, grpcConnWindow)
	}
}
