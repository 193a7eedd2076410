package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// listen opens a unixgram socket at name and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(EnvSocket, name)
	return conn
}

// receive reads one datagram.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySendsState(t *testing.T) {
	conn := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"Ready", Ready, "READY=1"},
		{"Stopping", Stopping, "STOPPING=1"},
		{"Notify", func() error { return Notify("STATUS=waiting for quorum\nEXTEND_TIMEOUT_USEC=1000") }, "STATUS=waiting for quorum\nEXTEND_TIMEOUT_USEC=1000"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := receive(t, conn); got != tc.want {
			t.Errorf("%s sent %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("abstract unix sockets are Linux-only")
	}
	conn := listen(t, fmt.Sprintf("@centra-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("sent %q, want READY=1", got)
	}
}

func TestNotifyWithoutSocketIsNoop(t *testing.T) {
	t.Setenv(EnvSocket, "")
	for _, f := range []func() error{Ready, Stopping, func() error { return Notify("READY=1") }} {
		if err := f(); err != nil {
			t.Errorf("NOTIFY_SOCKET unset: got %v, want nil", err)
		}
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv(EnvSocket, "vsock:2:1234")
	if err := Ready(); !errors.Is(err, ErrUnsupportedSocket) {
		t.Errorf("vsock address: got %v, want ErrUnsupportedSocket", err)
	}
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "missing.sock"))
	if err := Ready(); err == nil {
		t.Error("missing socket: got nil, want an error")
	}
}
