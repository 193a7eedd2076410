//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestEtcdctlAuth drives etcd's Auth API with Debian's etcdctl 3.4 against
// a 3-node mTLS cluster: `user add root`, `auth enable`, a user with a
// role on a prefix (allowed put, get, txn and watch; denied ones print
// etcd's "permission denied"), a wrong password, the client certificate's
// CN as the user when no --user is given (etcd's --client-cert-auth), a
// token from one member accepted by another, auth surviving a restart of
// every member, and gRPC's Unimplemented for unknown services and methods
// on both of the API's gRPC paths.
func TestEtcdctlAuth(t *testing.T) {
	framework.SystemTool(t, "etcdctl")
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithTLS())
	ctx := testCtx(t, 4*time.Minute)
	dir := filepath.Dir(c.CAFile())
	var eps []string
	for _, ep := range c.Endpoints() {
		eps = append(eps, "https://"+ep)
	}
	// The client certificate's CN is "client" (centra certs init).
	flags := []string{"--endpoints=" + strings.Join(eps, ","), "--cacert=" + c.CAFile(),
		"--cert=" + filepath.Join(dir, "client.crt"), "--key=" + filepath.Join(dir, "client.key")}
	etcdctl := func(stdin string, args ...string) framework.CmdResult {
		return framework.RunSystemEtcdctlInput(t, stdin, append(append([]string{}, flags...), args...)...)
	}
	ok := func(want string, args ...string) {
		t.Helper()
		if r := etcdctl("", args...); r.Err != nil || !strings.Contains(r.Stdout, want) {
			t.Fatalf("etcdctl %s: want %q in stdout: %s", strings.Join(args, " "), want, r)
		}
	}
	fails := func(want string, args ...string) {
		t.Helper()
		if r := etcdctl("", args...); r.Err == nil || !strings.Contains(r.Stderr, want) {
			t.Fatalf("etcdctl %s: want an error with %q: %s", strings.Join(args, " "), want, r)
		}
	}
	const denied = "etcdserver: permission denied"
	root := "--user=root:rootpw"
	alice := "--user=alice:alicepw"

	fails("etcdserver: root user does not exist", "auth", "enable")
	ok("User root created", "user", "add", "root:rootpw")
	ok("Authentication Enabled", "auth", "enable")
	ok("Role app created", root, "role", "add", "app")
	ok("Role app updated", root, "role", "grant-permission", "app", "--prefix=true", "readwrite", "app/")
	ok("User alice created", root, "user", "add", "alice:alicepw")
	ok("Role app is granted to user alice", root, "user", "grant-role", "alice", "app")
	ok("OK", root, "put", "other", "secret")

	// The limited user.
	ok("OK", alice, "put", "app/x", "1")
	ok("app/x\n1", alice, "get", "app/x")
	fails(denied, alice, "put", "other", "x")
	fails(denied, alice, "get", "other")
	fails(denied, alice, "get", "", "--prefix")
	fails(denied, alice, "del", "other")
	fails(denied, alice, "compaction", "1")
	fails(denied, alice, "user", "list")
	fails("etcdserver: authentication failed, invalid user ID or password", "--user=alice:wrong", "get", "app/x")
	if r := etcdctl("value(\"app/x\") = \"1\"\n\nput app/y 2\n\nput app/z 3\n\n", alice, "txn"); r.Err != nil || !strings.HasPrefix(r.Stdout, "SUCCESS") {
		t.Fatalf("alice's txn on app/: %s", r)
	}
	// Denied although the failure branch is not taken (etcd checks both).
	if r := etcdctl("value(\"app/x\") = \"1\"\n\nput app/y 2\n\nput other 3\n\n", alice, "txn"); r.Err == nil || !strings.Contains(r.Stderr, denied) {
		t.Fatalf("alice's txn touching other: %s", r)
	}
	fails("watch was canceled ("+denied+")", alice, "watch", "other")
	watchSees(t, ctx, append(append([]string{}, flags...), alice, "watch", "app/", "--prefix", "--rev=1"), "app/y")

	// No --user: the client certificate's CN is the user.
	fails(denied, "put", "app/cn", "v")
	ok("User client created", root, "user", "add", "client", "--no-password")
	ok("Role app is granted to user client", root, "user", "grant-role", "client", "app")
	ok("OK", "put", "app/cn", "v")
	fails(denied, "get", "other")
	fails("etcdserver: authentication failed, invalid user ID or password", "--user=client:x", "get", "app/cn")
	// Watches as the certificate's user, checked per watcher (etcdctl is
	// served by grpc-go's native Watch).
	fails("watch was canceled ("+denied+")", "watch", "other")
	watchSees(t, ctx, append(append([]string{}, flags...), "watch", "app/", "--prefix", "--rev=1"), "app/cn")
	// A lease's keys through a follower, which forwards to the leader.
	r := etcdctl("", "lease", "grant", "100")
	var leaseID string
	if _, err := fmt.Sscanf(r.Stdout, "lease %s granted", &leaseID); r.Err != nil || err != nil {
		t.Fatalf("etcdctl lease grant: %v %s", err, r)
	}
	ok("OK", "put", "app/leased", "v", "--lease="+leaseID)
	follower := c.Node(c.Followers(c.Leader(t))[0]).Endpoint()
	if r := framework.RunSystemEtcdctl(t, append(append([]string{"--endpoints=https://" + follower}, flags[1:]...), "lease", "timetolive", leaseID, "--keys")...); r.Err != nil || !strings.Contains(r.Stdout, "attached keys([app/leased])") {
		t.Fatalf("etcdctl lease timetolive on a follower as the certificate's user: %s", r)
	}
	// The same through centra's CLI (connect-go: served by net/http).
	cli := func(args ...string) framework.CmdResult {
		return c.RunCLI(append(append([]string{"kv"}, c.TLSFlags()...), append([]string{"--endpoint", c.Node(1).Endpoint()}, args...)...)...)
	}
	if r := cli("put", "app/cli", "v"); r.Err != nil {
		t.Fatalf("centra kv put as the certificate's user: %s", r)
	}
	if r := cli("get", "other"); r.Err == nil || !strings.Contains(r.Stderr, denied) {
		t.Fatalf("centra kv get other as the certificate's user: %s", r)
	}

	// A token issued by one member is valid on the others.
	tok := authenticate(t, ctx, c, c.Node(0).Endpoint(), "alice", "alicepw")
	for i := range 3 {
		cli := tokenClient(t, c, c.Node(i).Endpoint())
		tctx := metadata.AppendToOutgoingContext(ctx, "token", tok)
		if g, err := cli.Get(tctx, "app/x"); err != nil || len(g.Kvs) != 1 {
			t.Fatalf("get with node 1's token on %s: %v %v", c.Node(i), g, err)
		}
		if _, err := cli.Get(tctx, "other"); err == nil || !strings.Contains(err.Error(), denied) {
			t.Fatalf("get other with alice's token on %s: %v", c.Node(i), err)
		}
	}

	if err := c.RestartAll(ctx); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, func() error {
		if r := etcdctl("", alice, "get", "app/x", "--print-value-only"); r.Err != nil || r.Stdout != "1\n" {
			return fmt.Errorf("alice get after restart: %s", r)
		}
		return nil
	}, 30*time.Second)
	fails(denied, alice, "put", "other", "x")
	ok("root\n", root, "user", "get", "root")
	fails(denied, "get", "other")

	// Backups keep auth: etcdctl's snapshot of centra, restored into a new
	// centra and (migration out) into Debian's etcd 3.4.
	file := filepath.Join(t.TempDir(), "auth.db")
	save := func(user ...string) framework.CmdResult {
		args := append(append([]string{"--endpoints=https://" + c.Node(0).Endpoint()}, flags[1:]...), user...)
		return framework.RunSystemEtcdctl(t, append(args, "snapshot", "save", file)...)
	}
	if r := save(); r.Err == nil || !strings.Contains(r.Stderr, denied) {
		t.Fatalf("etcdctl snapshot save as the certificate's user: %s", r)
	}
	if r := save(root); r.Err != nil {
		t.Fatalf("etcdctl snapshot save as root: %s", r)
	}
	rc := framework.NewCluster(t)
	restoreInto(t, rc.Node(0), file)
	restored := func(ep string) {
		t.Helper()
		if r := framework.RunSystemEtcdctl(t, "--endpoints="+ep, alice, "get", "app/x", "--print-value-only"); r.Err != nil || r.Stdout != "1\n" {
			t.Fatalf("alice get on the restored %s: %s", ep, r)
		}
		if r := framework.RunSystemEtcdctl(t, "--endpoints="+ep, "get", "app/x"); r.Err == nil || !strings.Contains(r.Stderr, "etcdserver: user name is empty") {
			t.Fatalf("get without a user on the restored %s: %s", ep, r)
		}
	}
	restored(rc.Node(0).Endpoint())
	if etcdBin, err := exec.LookPath("etcd"); err == nil {
		_, ep := startEtcd(t, etcdBin, file)
		restored(ep)
	} else {
		t.Log("etcd not installed: the migration out of auth to etcd 3.4 is not checked")
	}

	unimplemented(t, ctx, c)
}

// watchSees runs `etcdctl watch` until its output shows key.
func watchSees(t *testing.T, ctx context.Context, args []string, key string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, framework.SystemTool(t, "etcdctl"), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() {
		if sc.Text() == key {
			return
		}
		seen = append(seen, sc.Text())
	}
	t.Fatalf("etcdctl %s ended without showing %s (stdout %q, stderr %q)", strings.Join(args, " "), key, seen, stderr.String())
}

// tokenClient is clientv3 without credentials on one member over mTLS.
func tokenClient(t *testing.T, c *framework.Cluster, ep string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: c.ClientTLS(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// authenticate returns a token from the member at ep.
func authenticate(t *testing.T, ctx context.Context, c *framework.Cluster, ep, user, password string) string {
	t.Helper()
	r, err := tokenClient(t, c, ep).Authenticate(ctx, user, password)
	if err != nil {
		t.Fatalf("authenticate %s at %s: %v", user, ep, err)
	}
	return r.Token
}

// unimplemented checks that unknown services and methods get gRPC's
// Unimplemented status from grpc-go clients (served by grpc-go) and
// connect-go's gRPC protocol (served by net/http).
func unimplemented(t *testing.T, ctx context.Context, c *framework.Cluster) {
	ep := c.Node(0).Endpoint()
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(credentials.NewTLS(c.ClientTLS())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.ClientTLS().Clone(), ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	for _, method := range []string{"/etcdserverpb.Nope/Get", "/etcdserverpb.KV/Nope", "/etcdserverpb.Auth/Nope"} {
		err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("grpc-go %s: %v, want Unimplemented", method, err)
		}
		_, err = connect.NewClient[emptypb.Empty, emptypb.Empty](hc, "https://"+ep+method, connect.WithGRPC()).CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Errorf("connect-go (gRPC protocol) %s: %v, want Unimplemented", method, err)
		}
	}
}
