package chainfire

import (
	"errors"
	"testing"

	"github.com/centra-cloud/centra/gen/authpb"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
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
