// Package sdnotify tells systemd about the service's state with the
// sd_notify protocol: one datagram such as "READY=1" sent to the unix socket
// named by $NOTIFY_SOCKET. A unit with Type=notify (the NixOS module's
// centra.service) is "started" only once READY=1 arrives, so units ordered
// after it wait for a node that actually serves.
//
// Every function is a no-op returning nil when NOTIFY_SOCKET is unset, that
// is whenever centra does not run under systemd with Type=notify.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvSocket is the environment variable systemd sets to the notify socket.
const EnvSocket = "NOTIFY_SOCKET"

// ErrUnsupportedSocket means NOTIFY_SOCKET is neither a file system path nor
// an abstract socket name ("@name"); systemd's vsock: form is not
// supported.
var ErrUnsupportedSocket = errors.New("sdnotify: unsupported NOTIFY_SOCKET address")

// Ready reports that start-up is finished and the service serves
// ("READY=1").
func Ready() error { return Notify("READY=1") }

// Stopping reports that the service is shutting down ("STOPPING=1").
func Stopping() error { return Notify("STOPPING=1") }

// Notify sends state, newline-separated VARIABLE=value assignments such as
// "READY=1" or "STATUS=waiting for quorum", to $NOTIFY_SOCKET. A name
// starting with '@' is an abstract socket. It returns nil without doing
// anything when NOTIFY_SOCKET is unset or empty.
func Notify(state string) error {
	name := os.Getenv(EnvSocket)
	if name == "" {
		return nil
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return fmt.Errorf("%w: %s=%q", ErrUnsupportedSocket, EnvSocket, name)
	}
	// Go maps a leading '@' to the abstract namespace (a leading NUL byte).
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: connect to %s: %w", name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q to %s: %w", state, name, err)
	}
	return nil
}
