package grpcmux

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// Creds returns grpc-go server credentials for the connections Split hands
// to grpc-go: the splitter already did the TLS handshake, so they do none
// and only report the connection's TLS state (credentials.TLSInfo in the
// call's peer, where the services find the client certificate; etcd's
// --client-cert-auth uses its CN as the user). Plaintext connections get
// no auth info.
func Creds() credentials.TransportCredentials { return splitCreds{} }

type splitCreds struct{}

// tlsConn is a connection whose TLS handshake is done (tlsReplayConn).
type tlsConn interface {
	ConnectionState() tls.ConnectionState
}

func (splitCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(tlsConn)
	if !ok {
		return c, nil, nil
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (splitCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("grpcmux: server-side credentials only")
}

func (splitCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (splitCreds) Clone() credentials.TransportCredentials { return splitCreds{} }

func (splitCreds) OverrideServerName(string) error { return nil }
