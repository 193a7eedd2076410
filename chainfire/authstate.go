package chainfire

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/etcdfmt"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/gen/authpb"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// authVersion is the command version that introduced the auth command and
// Command.auth_revision.
const authVersion = 4

// etcd's names: the user "root" with the role "root" may do everything;
// auth can be enabled only once it exists.
const (
	rootUser = "root"
	rootRole = "root"
)

// authState is the committed auth state: immutable, replaced as a whole by
// every auth change (copy on write), so readers need one atomic load.
type authState struct {
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	perms    map[string]*userPerms // per user, derived from users and roles
}

var emptyAuth = &authState{users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}, perms: map[string]*userPerms{}}

// keyRange is [start, end); a nil end is unbounded.
type keyRange struct{ start, end []byte }

// toRange converts etcd's (key, range_end) convention: an empty end is the
// key alone, "\x00" every key >= key.
func toRange(key, end []byte) keyRange {
	switch {
	case len(end) == 0:
		return keyRange{key, append(bytes.Clone(key), 0)}
	case len(end) == 1 && end[0] == 0:
		return keyRange{key, nil}
	}
	return keyRange{key, end}
}

// endLess orders range ends, nil (unbounded) last.
func endLess(a, b []byte) bool {
	if b == nil {
		return a != nil
	}
	return a != nil && bytes.Compare(a, b) < 0
}

// merge sorts rs and joins overlapping and adjacent ranges.
func merge(rs []keyRange) []keyRange {
	slices.SortFunc(rs, func(a, b keyRange) int { return bytes.Compare(a.start, b.start) })
	var out []keyRange
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].end == nil || bytes.Compare(r.start, out[n-1].end) <= 0) {
			if endLess(out[n-1].end, r.end) {
				out[n-1].end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// covered reports whether r lies inside one of the merged ranges rs.
func covered(rs []keyRange, r keyRange) bool {
	i := sort.Search(len(rs), func(i int) bool { return bytes.Compare(rs[i].start, r.start) > 0 })
	if i == 0 {
		return false
	}
	c := rs[i-1]
	return !endLess(c.end, r.end) && (c.end == nil || bytes.Compare(r.start, c.end) < 0)
}

// userPerms is what a user may do: everything (root role) or the merged
// key ranges of its roles.
type userPerms struct {
	root        bool
	read, write []keyRange
}

func permsOf(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	p := &userPerms{}
	for _, name := range u.Roles {
		if name == rootRole {
			p.root = true
			continue
		}
		r := roles[name]
		if r == nil {
			continue
		}
		for _, perm := range r.KeyPermission {
			kr := toRange(perm.Key, perm.RangeEnd)
			if perm.PermType != authpb.Permission_WRITE {
				p.read = append(p.read, kr)
			}
			if perm.PermType != authpb.Permission_READ {
				p.write = append(p.write, kr)
			}
		}
	}
	p.read, p.write = merge(p.read), merge(p.write)
	return p
}

// allowed reports whether p grants reading (write = false) or writing the
// range (key, end) in etcd's convention.
func (p *userPerms) allowed(write bool, key, end []byte) bool {
	if p.root {
		return true
	}
	rs := p.read
	if write {
		rs = p.write
	}
	return covered(rs, toRange(key, end))
}

// withPerms recomputes the derived permissions.
func (a *authState) withPerms() *authState {
	a.perms = make(map[string]*userPerms, len(a.users))
	for name, u := range a.users {
		a.perms[name] = permsOf(u, a.roles)
	}
	return a
}

func (a *authState) clone() *authState {
	return &authState{enabled: a.enabled, revision: a.revision, users: maps.Clone(a.users), roles: maps.Clone(a.roles)}
}

func (a *authState) isRoot(user string) bool {
	p := a.perms[user]
	return p != nil && p.root
}

// loadAuth reads the auth records.
func loadAuth(st *mvcc.Store, r pebble.Reader) (*authState, error) {
	meta, err := st.LoadAuthMeta(r)
	if err != nil {
		return nil, err
	}
	a := &authState{enabled: meta.Enabled, revision: meta.Revision, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
	if err := st.AuthRecords(r, mvcc.AuthUser, func(name string, v []byte) error {
		u := &authpb.User{}
		a.users[name] = u
		return proto.Unmarshal(v, u)
	}); err != nil {
		return nil, fmt.Errorf("chainfire: load users: %w", err)
	}
	if err := st.AuthRecords(r, mvcc.AuthRole, func(name string, v []byte) error {
		ro := &authpb.Role{}
		a.roles[name] = ro
		return proto.Unmarshal(v, ro)
	}); err != nil {
		return nil, fmt.Errorf("chainfire: load roles: %w", err)
	}
	return a.withPerms(), nil
}

// authChange applies one auth command to a copy of the state; it returns
// the records to write (kind+name -> value, nil = delete). Every failure is
// found before anything is changed.
type authChange struct {
	next   *authState
	users  map[string]*authpb.User // changed users (nil = deleted)
	roles  map[string]*authpb.Role
	logout []string // users whose tokens end
}

func (c *authChange) putUser(u *authpb.User) {
	c.next.users[string(u.Name)] = u
	c.users[string(u.Name)] = u
}

func (c *authChange) putRole(r *authpb.Role) {
	c.next.roles[string(r.Name)] = r
	c.roles[string(r.Name)] = r
}

func (c *authChange) user(name string) (*authpb.User, error) {
	u := c.next.users[name]
	if u == nil {
		return nil, ErrUserNotFound
	}
	return proto.CloneOf(u), nil
}

func (c *authChange) role(name string) (*authpb.Role, error) {
	r := c.next.roles[name]
	if r == nil {
		return nil, ErrRoleNotFound
	}
	return proto.CloneOf(r), nil
}

// validPermRange is etcd's isValidPermissionRange.
func validPermRange(key, end []byte) bool {
	switch {
	case len(key) == 0:
		return false
	case len(end) == 0 || (len(end) == 1 && end[0] == 0):
		return true
	}
	return bytes.Compare(key, end) < 0
}

// decodeHash returns the bcrypt hash a proposer put into hashedPassword.
func decodeHash(h string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: auth command without a password hash", ErrBadCommand)
	}
	return b, nil
}

// change computes the effect of an auth command with etcd's semantics
// (auth/store.go of etcd 3.5).
func (a *authState) change(cmd *raftcmdv1.Auth) (*authChange, error) {
	c := &authChange{next: a.clone(), users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
	switch op := cmd.Op.(type) {
	case *raftcmdv1.Auth_Enable:
		if a.enabled {
			return c, nil // etcd: already enabled, ignored
		}
		u := a.users[rootUser]
		if u == nil {
			return nil, ErrRootUserNotExist
		}
		if !slices.Contains(u.Roles, rootRole) {
			return nil, ErrRootRoleNotExist
		}
		c.next.enabled = true
	case *raftcmdv1.Auth_Disable:
		if !a.enabled {
			return c, nil
		}
		c.next.enabled = false
		c.logout = slices.Collect(maps.Keys(a.users))
	case *raftcmdv1.Auth_UserAdd:
		r := op.UserAdd
		if r.Name == "" {
			return nil, ErrUserEmpty
		}
		if a.users[r.Name] != nil {
			return nil, ErrUserAlreadyExist
		}
		u := &authpb.User{Name: []byte(r.Name), Options: r.Options}
		if u.Options == nil {
			u.Options = &authpb.UserAddOptions{}
		}
		if !u.Options.NoPassword {
			h, err := decodeHash(r.HashedPassword)
			if err != nil {
				return nil, err
			}
			u.Password = h
		}
		c.putUser(u)
	case *raftcmdv1.Auth_UserDelete:
		name := op.UserDelete.Name
		if a.enabled && name == rootUser {
			return nil, ErrInvalidAuthMgmt
		}
		if a.users[name] == nil {
			return nil, ErrUserNotFound
		}
		delete(c.next.users, name)
		c.users[name] = nil
		c.logout = []string{name}
	case *raftcmdv1.Auth_UserChangePassword:
		r := op.UserChangePassword
		u, err := c.user(r.Name)
		if err != nil {
			return nil, err
		}
		if u.Options != nil && u.Options.NoPassword {
			return nil, ErrNoPasswordUser
		}
		if u.Password, err = decodeHash(r.HashedPassword); err != nil {
			return nil, err
		}
		c.putUser(u)
		c.logout = []string{r.Name}
	case *raftcmdv1.Auth_UserGrantRole:
		r := op.UserGrantRole
		u, err := c.user(r.User)
		if err != nil {
			return nil, err
		}
		if r.Role != rootRole && a.roles[r.Role] == nil {
			return nil, ErrRoleNotFound
		}
		i, found := slices.BinarySearch(u.Roles, r.Role)
		if found {
			return c, nil // etcd: granting a granted role is a no-op
		}
		u.Roles = slices.Insert(u.Roles, i, r.Role)
		c.putUser(u)
	case *raftcmdv1.Auth_UserRevokeRole:
		r := op.UserRevokeRole
		if a.enabled && r.Name == rootUser && r.Role == rootRole {
			return nil, ErrInvalidAuthMgmt
		}
		u, err := c.user(r.Name)
		if err != nil {
			return nil, err
		}
		i, found := slices.BinarySearch(u.Roles, r.Role)
		if !found {
			return nil, ErrRoleNotGranted
		}
		u.Roles = slices.Delete(u.Roles, i, i+1)
		c.putUser(u)
	case *raftcmdv1.Auth_RoleAdd:
		name := op.RoleAdd.Name
		if name == "" {
			return nil, ErrRoleEmpty
		}
		if a.roles[name] != nil {
			return nil, ErrRoleAlreadyExist
		}
		c.putRole(&authpb.Role{Name: []byte(name)})
	case *raftcmdv1.Auth_RoleDelete:
		name := op.RoleDelete.Role
		if a.enabled && name == rootRole {
			return nil, ErrInvalidAuthMgmt
		}
		if a.roles[name] == nil {
			return nil, ErrRoleNotFound
		}
		delete(c.next.roles, name)
		c.roles[name] = nil
		for uname, u := range a.users {
			if i, found := slices.BinarySearch(u.Roles, name); found {
				u = proto.CloneOf(u)
				u.Roles = slices.Delete(u.Roles, i, i+1)
				c.next.users[uname], c.users[uname] = u, u
			}
		}
	case *raftcmdv1.Auth_RoleGrantPermission:
		r := op.RoleGrantPermission
		if r.Perm == nil {
			return nil, ErrPermissionNotGiven
		}
		if !validPermRange(r.Perm.Key, r.Perm.RangeEnd) {
			return nil, ErrInvalidAuthMgmt
		}
		role, err := c.role(r.Name)
		if err != nil {
			return nil, err
		}
		i := sort.Search(len(role.KeyPermission), func(i int) bool {
			return bytes.Compare(role.KeyPermission[i].Key, r.Perm.Key) >= 0
		})
		if i < len(role.KeyPermission) && bytes.Equal(role.KeyPermission[i].Key, r.Perm.Key) && bytes.Equal(role.KeyPermission[i].RangeEnd, r.Perm.RangeEnd) {
			role.KeyPermission[i].PermType = r.Perm.PermType
		} else {
			role.KeyPermission = append(role.KeyPermission, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
			slices.SortStableFunc(role.KeyPermission, func(x, y *authpb.Permission) int { return bytes.Compare(x.Key, y.Key) })
		}
		c.putRole(role)
	case *raftcmdv1.Auth_RoleRevokePermission:
		r := op.RoleRevokePermission
		role, err := c.role(r.Role)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(role.KeyPermission, func(p *authpb.Permission) bool {
			return bytes.Equal(p.Key, r.Key) && bytes.Equal(p.RangeEnd, r.RangeEnd)
		})
		if i < 0 {
			return nil, ErrPermissionNotGranted
		}
		role.KeyPermission = slices.Delete(role.KeyPermission, i, i+1)
		c.putRole(role)
	default:
		return nil, fmt.Errorf("%w: empty or unknown auth command", ErrBadCommand)
	}
	c.next.revision++
	c.next.withPerms()
	return c, nil
}

// write records the change in b.
func (c *authChange) write(st *mvcc.Store, b pebble.Writer) error {
	for name, u := range c.users {
		if err := putAuthRecord(st, b, mvcc.AuthUser, name, u); err != nil {
			return err
		}
	}
	for name, r := range c.roles {
		if err := putAuthRecord(st, b, mvcc.AuthRole, name, r); err != nil {
			return err
		}
	}
	return st.SetAuthMeta(b, mvcc.AuthMeta{Enabled: c.next.enabled, Revision: c.next.revision})
}

// putAuthRecord writes m (deletes the record when m is a nil pointer).
func putAuthRecord[M interface {
	*authpb.User | *authpb.Role
	proto.Message
}](st *mvcc.Store, b pebble.Writer, kind byte, name string, m M) error {
	if m == nil {
		return st.SetAuthRecord(b, kind, name, nil)
	}
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return st.SetAuthRecord(b, kind, name, v)
}

// applyAuth applies an auth command: the new state is published with the
// batch (Applied); tokens of deleted users, of users whose password changed,
// and all of them when auth is disabled end then, and logins' tokens start.
func (f *fsm) applyAuth(b *pebble.Batch, cmd *raftcmdv1.Auth) (*etcdserverpb.AuthEnableResponse, error) {
	if l, ok := cmd.Op.(*raftcmdv1.Auth_Login); ok {
		a := f.applyAuthState
		switch {
		case !a.enabled:
			return nil, ErrAuthNotEnabled
		case !l.Login.Member && a.users[l.Login.Name] == nil:
			return nil, ErrAuthFailed
		}
		ev := tokenEvent{token: l.Login.Token, user: l.Login.Name}
		if l.Login.Member {
			ev.user = memberUser
		}
		f.tokenEvents = append(f.tokenEvents, ev)
		return &etcdserverpb.AuthEnableResponse{Header: &etcdserverpb.ResponseHeader{}}, nil
	}
	c, err := f.applyAuthState.change(cmd)
	if err != nil {
		return nil, err
	}
	if c.next.revision != f.applyAuthState.revision {
		if err := c.write(f.st, b); err != nil {
			return nil, err
		}
		f.applyAuthState = c.next
		for _, u := range c.logout {
			f.tokenEvents = append(f.tokenEvents, tokenEvent{user: u})
		}
	}
	// Every auth result is a header alone, so it decodes as the response
	// of any auth RPC.
	return &etcdserverpb.AuthEnableResponse{Header: &etcdserverpb.ResponseHeader{}}, nil
}

// authSnapshot reads the auth state of r as etcd's snapshot file holds it.
func authSnapshot(st *mvcc.Store, r pebble.Reader) (etcdfmt.Auth, error) {
	meta, err := st.LoadAuthMeta(r)
	if err != nil {
		return etcdfmt.Auth{}, err
	}
	a := etcdfmt.Auth{Enabled: meta.Enabled, Revision: meta.Revision, Users: map[string][]byte{}, Roles: map[string][]byte{}}
	for kind, recs := range map[byte]map[string][]byte{mvcc.AuthUser: a.Users, mvcc.AuthRole: a.Roles} {
		if err := st.AuthRecords(r, kind, func(name string, v []byte) error {
			recs[name] = bytes.Clone(v)
			return nil
		}); err != nil {
			return a, err
		}
	}
	return a, nil
}

// restoreAuth writes the auth state of a snapshot file (centra's or
// etcd's), checking every record decodes.
func restoreAuth(st *mvcc.Store, w pebble.Writer, a etcdfmt.Auth) error {
	for name, v := range a.Users {
		if err := proto.Unmarshal(v, &authpb.User{}); err != nil {
			return fmt.Errorf("chainfire: snapshot user %q: %w", name, err)
		}
		if err := st.SetAuthRecord(w, mvcc.AuthUser, name, v); err != nil {
			return err
		}
	}
	for name, v := range a.Roles {
		if err := proto.Unmarshal(v, &authpb.Role{}); err != nil {
			return fmt.Errorf("chainfire: snapshot role %q: %w", name, err)
		}
		if err := st.SetAuthRecord(w, mvcc.AuthRole, name, v); err != nil {
			return err
		}
	}
	return st.SetAuthMeta(w, mvcc.AuthMeta{Enabled: a.Enabled, Revision: a.Revision})
}
