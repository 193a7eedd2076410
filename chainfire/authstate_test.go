package chainfire

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	"github.com/centra-cloud/centra/gen/authpb"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// TestPermissionRanges checks the merged key ranges against etcd's
// conventions: a single key, a prefix, "from key" ("\x00"), adjacent and
// overlapping grants that together cover a request, and gaps.
func TestPermissionRanges(t *testing.T) {
	perm := func(typ authpb.Permission_Type, key, end string) *authpb.Permission {
		return &authpb.Permission{PermType: typ, Key: []byte(key), RangeEnd: []byte(end)}
	}
	roles := map[string]*authpb.Role{
		"r": {Name: []byte("r"), KeyPermission: []*authpb.Permission{
			perm(authpb.Permission_READWRITE, "a/", "a0"), // prefix a/
			perm(authpb.Permission_READ, "b", "c"),
			perm(authpb.Permission_READ, "c", "d"), // adjacent to [b, c)
			perm(authpb.Permission_WRITE, "k", ""), // the key k alone
			perm(authpb.Permission_READ, "x", "\x00"),
		}},
	}
	p := permsOf(&authpb.User{Roles: []string{"r", "missing"}}, roles)
	for _, tc := range []struct {
		write    bool
		key, end string
		want     bool
	}{
		{false, "a/1", "", true},
		{true, "a/", "a0", true},
		{true, "a/", "\x00", false},
		{false, "a", "", false},
		{false, "b", "d", true}, // two adjacent grants
		{false, "b", "d\x00", false},
		{true, "b", "", false}, // read only
		{true, "k", "", true},
		{false, "k", "", false}, // write only
		{true, "k", "k\x00", true},
		{true, "k", "l", false},
		{false, "x", "\x00", true},
		{false, "zzz", "", true},
		{false, "w", "\x00", false},
	} {
		if got := p.allowed(tc.write, []byte(tc.key), []byte(tc.end)); got != tc.want {
			t.Errorf("allowed(write=%v, %q, %q) = %v, want %v", tc.write, tc.key, tc.end, got, tc.want)
		}
	}
	if root := permsOf(&authpb.User{Roles: []string{rootRole}}, nil); !root.allowed(true, []byte("any"), []byte("\x00")) {
		t.Error("the root role does not allow everything")
	}
}

// TestAuthChanges applies auth commands with etcd's semantics: enable
// needs root with the root role, revisions count changes only, role
// deletion strips it from users, and root stays protected while enabled.
func TestAuthChanges(t *testing.T) {
	st := emptyAuth
	apply := func(op *raftcmdv1.Auth, want error) {
		t.Helper()
		c, err := st.change(op)
		if !errors.Is(err, want) {
			t.Fatalf("%v: got %v, want %v", op, err, want)
		}
		if err == nil {
			st = c.next
		}
	}
	hash := "JDJhJDA0JGZha2U=" // base64 of any bytes: apply does not check the hash
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_Enable{Enable: &etcdserverpb.AuthEnableRequest{}}}, ErrRootUserNotExist)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: &etcdserverpb.AuthUserAddRequest{Name: rootUser, HashedPassword: hash}}}, nil)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: &etcdserverpb.AuthUserAddRequest{Name: rootUser, HashedPassword: hash}}}, ErrUserAlreadyExist)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: &etcdserverpb.AuthUserAddRequest{Name: "u"}}}, ErrBadCommand)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_Enable{Enable: &etcdserverpb.AuthEnableRequest{}}}, ErrRootRoleNotExist)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserGrantRole{UserGrantRole: &etcdserverpb.AuthUserGrantRoleRequest{User: rootUser, Role: rootRole}}}, nil)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_Enable{Enable: &etcdserverpb.AuthEnableRequest{}}}, nil)
	rev := st.revision
	// Granting a granted role and enabling twice change nothing.
	for _, op := range []*raftcmdv1.Auth{
		{Op: &raftcmdv1.Auth_UserGrantRole{UserGrantRole: &etcdserverpb.AuthUserGrantRoleRequest{User: rootUser, Role: rootRole}}},
		{Op: &raftcmdv1.Auth_Enable{Enable: &etcdserverpb.AuthEnableRequest{}}},
	} {
		c, err := st.change(op)
		if err != nil || c.next.revision != rev {
			t.Fatalf("%v: err %v, revision %d, want nil and %d", op, err, c.next.revision, rev)
		}
	}
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserDelete{UserDelete: &etcdserverpb.AuthUserDeleteRequest{Name: rootUser}}}, ErrInvalidAuthMgmt)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserRevokeRole{UserRevokeRole: &etcdserverpb.AuthUserRevokeRoleRequest{Name: rootUser, Role: rootRole}}}, ErrInvalidAuthMgmt)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleAdd{RoleAdd: &etcdserverpb.AuthRoleAddRequest{Name: "app"}}}, nil)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleGrantPermission{RoleGrantPermission: &etcdserverpb.AuthRoleGrantPermissionRequest{Name: "app",
		Perm: &authpb.Permission{Key: []byte("b"), RangeEnd: []byte("a")}}}}, ErrInvalidAuthMgmt)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleGrantPermission{RoleGrantPermission: &etcdserverpb.AuthRoleGrantPermissionRequest{Name: "app"}}}, ErrPermissionNotGiven)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleGrantPermission{RoleGrantPermission: &etcdserverpb.AuthRoleGrantPermissionRequest{Name: "app",
		Perm: &authpb.Permission{Key: []byte("a/"), RangeEnd: []byte("a0")}}}}, nil)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: &etcdserverpb.AuthUserAddRequest{Name: "u", Options: &authpb.UserAddOptions{NoPassword: true}}}}, nil)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserGrantRole{UserGrantRole: &etcdserverpb.AuthUserGrantRoleRequest{User: "u", Role: "app"}}}, nil)
	if !st.perms["u"].allowed(false, []byte("a/x"), nil) {
		t.Fatal("u cannot read a/x after the grant")
	}
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleDelete{RoleDelete: &etcdserverpb.AuthRoleDeleteRequest{Role: "app"}}}, nil)
	if len(st.users["u"].Roles) != 0 || st.perms["u"].allowed(false, []byte("a/x"), nil) {
		t.Fatalf("u keeps the deleted role: %v", st.users["u"].Roles)
	}
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserRevokeRole{UserRevokeRole: &etcdserverpb.AuthUserRevokeRoleRequest{Name: "u", Role: "app"}}}, ErrRoleNotGranted)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserChangePassword{UserChangePassword: &etcdserverpb.AuthUserChangePasswordRequest{Name: "u", HashedPassword: hash}}}, ErrNoPasswordUser)
	apply(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleDelete{RoleDelete: &etcdserverpb.AuthRoleDeleteRequest{Role: "app"}}}, ErrRoleNotFound)
	apply(&raftcmdv1.Auth{}, ErrBadCommand)
	if emptyAuth.enabled || len(emptyAuth.users) != 0 || len(emptyAuth.roles) != 0 {
		t.Fatal("changes modified the shared empty state")
	}
}

// TestAuthApplyPersistsAndChecksRevision applies auth commands through the
// state machine on pebble: a write checked at an older auth revision is
// refused (etcd's ErrAuthOldRevision), a version newer than this binary
// knows is refused, and a fresh state machine loads the same auth state
// from the DB (restart).
func TestAuthApplyPersistsAndChecksRevision(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	newState := func() *fsm {
		f := newFSM(db, raftnode.ShardKeyspace(raftnode.MetadataShardID), lease.New(nil), log)
		if err := f.Load(db); err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := newState()
	index := uint64(0)
	apply := func(cmds ...*raftcmdv1.Command) []uint64 {
		t.Helper()
		var entries []sm.Entry
		for _, c := range cmds {
			if c.Version == 0 {
				c.Version = versionFor(c)
			}
			data, err := proto.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			index++
			entries = append(entries, sm.Entry{Index: index, Cmd: data})
		}
		b := db.NewIndexedBatch()
		if err := f.Apply(b, entries); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		f.Applied(index)
		var codes []uint64
		for _, e := range entries {
			codes = append(codes, e.Result.Value)
		}
		return codes
	}
	auth := func(op *raftcmdv1.Auth) *raftcmdv1.Command {
		return &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Auth{Auth: op}}
	}
	hash := "JDJhJDA0JGZha2U="
	codes := apply(
		auth(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: &etcdserverpb.AuthUserAddRequest{Name: rootUser, HashedPassword: hash}}}),
		auth(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserGrantRole{UserGrantRole: &etcdserverpb.AuthUserGrantRoleRequest{User: rootUser, Role: rootRole}}}),
		auth(&raftcmdv1.Auth{Op: &raftcmdv1.Auth_Enable{Enable: &etcdserverpb.AuthEnableRequest{}}}),
	)
	if codes[0]+codes[1]+codes[2] != 0 {
		t.Fatalf("setting up root and enabling: result codes %v", codes)
	}
	rev := f.auth.Load().revision
	put := func(authRev uint64) *raftcmdv1.Command {
		return &raftcmdv1.Command{AuthRevision: authRev, Cmd: &raftcmdv1.Command_Put{Put: &etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v")}}}
	}
	newer := put(rev)
	newer.Version = commandVersion + 1
	codes = apply(put(rev), put(rev-1), newer)
	old, _ := applyErrorCode(ErrAuthOldRevision)
	bad, _ := applyErrorCode(ErrBadCommand)
	if codes[0] != 0 || codes[1] != old || codes[2] != bad {
		t.Fatalf("puts at the current, an old auth revision and from a newer binary: codes %v, want [0 %d %d]", codes, old, bad)
	}
	// Restart: a new state machine on the same DB.
	g := newState().auth.Load()
	if !g.enabled || g.revision != rev || !g.isRoot(rootUser) || string(g.users[rootUser].Password) != "$2a$04$fake" {
		t.Fatalf("auth state after a reload: enabled %v revision %d (want %d) users %v", g.enabled, g.revision, rev, g.users)
	}
}
