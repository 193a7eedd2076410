package chainfire_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/centra-cloud/centra/chainfire"
	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// userClient is etcd's Go client logged in as user (empty: no
// credentials).
func (n *node) userClient(t *testing.T, user, password string) (*clientv3.Client, error) {
	t.Helper()
	// The dial includes the login (bcrypt on the server): 1-3 s under
	// -race on a loaded 2-core box.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{n.grpcAddr}, DialTimeout: 20 * time.Second, Logger: zap.NewNop(), Username: user, Password: password})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cli.Close() })
	return cli, nil
}

func wantEtcdErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want etcd's %q", what, err, want)
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// enableAuth creates root (and its role) and enables auth, as etcdctl's
// `user add root` and `auth enable` do, checking etcd's errors on the way.
func enableAuth(t *testing.T, ctx context.Context, cli *clientv3.Client) {
	t.Helper()
	_, err := cli.AuthEnable(ctx)
	wantEtcdErr(t, "auth enable without root", err, rpctypes.ErrRootUserNotExist)
	_, err = cli.UserAdd(ctx, "root", "rootpw")
	mustOK(t, "user add root", err)
	_, err = cli.AuthEnable(ctx)
	wantEtcdErr(t, "auth enable without the root role", err, rpctypes.ErrRootRoleNotExist)
	_, err = cli.RoleAdd(ctx, "root")
	mustOK(t, "role add root", err)
	_, err = cli.UserGrantRole(ctx, "root", "root")
	mustOK(t, "grant root", err)
	_, err = cli.AuthEnable(ctx)
	mustOK(t, "auth enable", err)
}

// TestAuthUsersRolesAndPermissions drives etcd's Auth API with clientv3:
// enabling needs root with the root role; then a user with a role on a
// prefix may use it for put, get, txn, watch and leases, and gets etcd's
// errors for everything else (other keys, other txn branches, compaction,
// user management); changes apply at once to logged-in clients.
func TestAuthUsersRolesAndPermissions(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t, 60*time.Second)
	anon := n.etcdClient(t)
	enableAuth(t, ctx, anon)

	_, err := anon.Put(ctx, "app/x", "1")
	wantEtcdErr(t, "put without credentials", err, rpctypes.ErrUserEmpty)
	_, err = n.userClient(t, "root", "wrong")
	wantEtcdErr(t, "login with a wrong password", err, rpctypes.ErrAuthFailed)

	root, err := n.userClient(t, "root", "rootpw")
	mustOK(t, "root login", err)
	for _, step := range []struct {
		what string
		err  error
	}{
		{"role add app", func() error { _, err := root.RoleAdd(ctx, "app"); return err }()},
		{"grant app/ readwrite", func() error {
			_, err := root.RoleGrantPermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}()},
		{"grant ro/ read", func() error {
			_, err := root.RoleGrantPermission(ctx, "app", "ro/", clientv3.GetPrefixRangeEnd("ro/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		}()},
		{"user add alice", func() error { _, err := root.UserAdd(ctx, "alice", "alicepw"); return err }()},
		{"grant alice app", func() error { _, err := root.UserGrantRole(ctx, "alice", "app"); return err }()},
		{"root put other", func() error { _, err := root.Put(ctx, "other", "secret"); return err }()},
	} {
		mustOK(t, step.what, step.err)
	}
	_, err = root.UserGrantRole(ctx, "nobody", "app")
	wantEtcdErr(t, "grant to an unknown user", err, rpctypes.ErrUserNotFound)
	_, err = root.UserGrantRole(ctx, "alice", "nope")
	wantEtcdErr(t, "grant an unknown role", err, rpctypes.ErrRoleNotFound)
	_, err = root.UserAdd(ctx, "alice", "x")
	wantEtcdErr(t, "add an existing user", err, rpctypes.ErrUserAlreadyExist)
	_, err = root.UserDelete(ctx, "root")
	wantEtcdErr(t, "delete root while enabled", err, rpctypes.ErrInvalidAuthMgmt)
	_, err = root.RoleRevokePermission(ctx, "app", "nokey", "")
	wantEtcdErr(t, "revoke a permission never granted", err, rpctypes.ErrPermissionNotGranted)

	alice, err := n.userClient(t, "alice", "alicepw")
	mustOK(t, "alice login", err)
	w := alice.Watch(ctx, "app/", clientv3.WithPrefix())
	denied := alice.Watch(ctx, "other")

	_, err = alice.Put(ctx, "app/x", "1")
	mustOK(t, "alice put app/x", err)
	g, err := alice.Get(ctx, "app/", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("alice get app/: %v %v", g, err)
	}
	_, err = alice.Get(ctx, "ro/a")
	mustOK(t, "alice read ro/a", err)
	for what, err := range map[string]error{
		"put other":       func() error { _, err := alice.Put(ctx, "other", "x"); return err }(),
		"get other":       func() error { _, err := alice.Get(ctx, "other"); return err }(),
		"get everything":  func() error { _, err := alice.Get(ctx, "", clientv3.WithPrefix()); return err }(),
		"get app/ and on": func() error { _, err := alice.Get(ctx, "app/", clientv3.WithFromKey()); return err }(),
		"put ro/a":        func() error { _, err := alice.Put(ctx, "ro/a", "x"); return err }(),
		"delete ro/":      func() error { _, err := alice.Delete(ctx, "ro/", clientv3.WithPrefix()); return err }(),
		"txn else branch": func() error {
			_, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("app/x"), "=", "1")).Then(clientv3.OpPut("app/y", "1")).Else(clientv3.OpPut("other", "x")).Commit()
			return err
		}(),
		"txn compare": func() error {
			_, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("other"), "=", "1")).Then(clientv3.OpPut("app/y", "1")).Commit()
			return err
		}(),
		"nested txn": func() error {
			_, err := alice.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpGet("other")}, nil)).Commit()
			return err
		}(),
		"compact": func() error { _, err := alice.Compact(ctx, 2); return err }(),
		"user list": func() error {
			_, err := alice.UserList(ctx)
			return err
		}(),
		"member add": func() error { _, err := alice.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); return err }(),
	} {
		wantEtcdErr(t, "alice "+what, err, rpctypes.ErrPermissionDenied)
	}
	// Snapshot needs root too; clientv3 reports the stream's status as is.
	rc, err := alice.Snapshot(ctx)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), rpctypes.ErrPermissionDenied.Error()) {
		t.Fatalf("alice snapshot: %v, want permission denied", err)
	}
	tr, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("app/x"), "=", "1")).
		Then(clientv3.OpPut("app/y", "1"), clientv3.OpGet("ro/a")).Else(clientv3.OpGet("app/x")).Commit()
	if err != nil || !tr.Succeeded {
		t.Fatalf("alice txn within her permissions: %v %v", tr, err)
	}
	if _, err := alice.UserGet(ctx, "alice"); err != nil {
		t.Fatalf("alice reads herself: %v", err)
	}

	// Watches: the permitted one sees alice's puts, the other is cancelled
	// at creation with etcd's reason.
	for got := 0; got < 2; {
		resp := <-w
		if err := resp.Err(); err != nil {
			t.Fatalf("alice's app/ watch: %v", err)
		}
		got += len(resp.Events)
	}
	resp := <-denied
	if !resp.Canceled || !errors.Is(resp.Err(), rpctypes.ErrPermissionDenied) {
		t.Fatalf("watch on other: canceled %v err %v, want permission denied", resp.Canceled, resp.Err())
	}

	// Leases: revoking or inspecting a lease needs write/read on its keys.
	lg, err := root.Grant(ctx, 60)
	mustOK(t, "root grant", err)
	_, err = root.Put(ctx, "other2", "x", clientv3.WithLease(lg.ID))
	mustOK(t, "root put with lease", err)
	_, err = alice.Revoke(ctx, lg.ID)
	wantEtcdErr(t, "alice revokes root's lease", err, rpctypes.ErrPermissionDenied)
	_, err = alice.TimeToLive(ctx, lg.ID, clientv3.WithAttachedKeys())
	wantEtcdErr(t, "alice inspects root's lease", err, rpctypes.ErrPermissionDenied)
	own, err := alice.Grant(ctx, 60)
	mustOK(t, "alice grant", err)
	_, err = alice.Put(ctx, "app/l", "x", clientv3.WithLease(own.ID))
	mustOK(t, "alice put with her lease", err)
	_, err = alice.Revoke(ctx, own.ID)
	mustOK(t, "alice revokes her lease", err)

	// A revoked permission applies to the logged-in client at once.
	_, err = root.RoleRevokePermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"))
	mustOK(t, "revoke app/", err)
	_, err = alice.Put(ctx, "app/x", "3")
	wantEtcdErr(t, "alice put after the revoke", err, rpctypes.ErrPermissionDenied)
	// Deleting a user ends its tokens.
	_, err = root.UserDelete(ctx, "alice")
	mustOK(t, "delete alice", err)
	_, err = alice.Get(ctx, "ro/a")
	if err == nil {
		t.Fatal("a deleted user's client still reads")
	}

	st, err := root.AuthStatus(ctx)
	if err != nil || !st.Enabled {
		t.Fatalf("auth status: %v %v", st, err)
	}
	_, err = root.AuthDisable(ctx)
	mustOK(t, "auth disable", err)
	_, err = anon.Put(ctx, "other", "free")
	mustOK(t, "put after auth disable", err)
}

// TestAuthTokens checks simple tokens: a bad one is etcd's "invalid auth
// token" (clientv3 then logs in again), and a token expires after its TTL
// without use while clientv3 keeps working through re-authentication.
func TestAuthTokens(t *testing.T) {
	n := startNode(t, func(c *chainfire.Config) { c.AuthTokenTTL = 2 * time.Second })
	ctx := testCtx(t, 60*time.Second)
	enableAuth(t, ctx, n.etcdClient(t))
	root, err := n.userClient(t, "root", "rootpw")
	mustOK(t, "root login", err)

	get := func(token string) error {
		req := connect.NewRequest(&etcdserverpb.RangeRequest{Key: []byte("k")})
		req.Header().Set("token", token)
		_, err := n.kv.Range(ctx, req)
		return err
	}
	wantCode(t, get("bogus.1"), connect.CodeUnauthenticated, chainfire.ErrInvalidAuthToken)

	auth, err := root.Authenticate(ctx, "root", "rootpw")
	mustOK(t, "authenticate", err)
	mustOK(t, "get with a fresh token", get(auth.Token))
	// Unused for longer than the TTL, the token ends: the passing time is
	// what is tested, so the test waits it out.
	select {
	case <-time.After(2500 * time.Millisecond):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	wantCode(t, get(auth.Token), connect.CodeUnauthenticated, chainfire.ErrInvalidAuthToken)
	// clientv3's own token expired too: it logs in again by itself.
	_, err = root.Put(ctx, "k", "v")
	mustOK(t, "root put after its token expired", err)

	// A member's own token (the corruption check's HashKV on the other
	// members) may do what root may; no user can take its name.
	hashKV := func(token string) error {
		req := connect.NewRequest(&etcdserverpb.HashKVRequest{})
		req.Header().Set("token", token)
		_, err := n.maint.HashKV(ctx, req)
		return err
	}
	wantCode(t, hashKV("bogus.2"), connect.CodeUnauthenticated, chainfire.ErrInvalidAuthToken)
	mt, err := n.srv.MemberToken(ctx)
	mustOK(t, "member token", err)
	mustOK(t, "HashKV with the member token", hashKV(mt))
	if _, err := root.UserAdd(ctx, "\x00member", "x"); err == nil {
		t.Fatal("a user took the members' reserved name")
	}

	// centra's own ClusterService (`centra cluster ...`) changes membership
	// as etcd's Cluster service does, so it needs the root role too.
	remove := func(token string) error {
		req := connect.NewRequest(&chainfirev1.RemoveMemberRequest{NodeId: 9})
		if token != "" {
			req.Header().Set("token", token)
		}
		_, err := n.admin.RemoveMember(ctx, req)
		return err
	}
	wantCode(t, remove(""), connect.CodeInvalidArgument, chainfire.ErrUserEmpty)
	wantCode(t, remove("bogus.3"), connect.CodeUnauthenticated, chainfire.ErrInvalidAuthToken)
	_, err = root.UserAdd(ctx, "bob", "bobpw")
	mustOK(t, "add bob", err)
	bob, err := root.Authenticate(ctx, "bob", "bobpw")
	mustOK(t, "bob login", err)
	wantCode(t, remove(bob.Token), connect.CodePermissionDenied, chainfire.ErrPermissionDenied)
	rootTok, err := root.Authenticate(ctx, "root", "rootpw")
	mustOK(t, "root login", err)
	if err := remove(rootTok.Token); err == nil || connect.CodeOf(err) == connect.CodePermissionDenied || connect.CodeOf(err) == connect.CodeUnauthenticated {
		t.Fatalf("root's RemoveMember of an unknown node: %v, want a membership error, not an auth one", err)
	}
}
