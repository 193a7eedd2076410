package chainfire

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/centra-cloud/centra/gen/authpb"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/loop"
)

// tokenHeader is the gRPC metadata clientv3 and etcdctl send the token in
// (etcd's rpctypes.TokenFieldNameGRPC).
const tokenHeader = "token"

// defaultTokenTTL is etcd's simple token TTL (--auth-token-ttl, 300 s).
const defaultTokenTTL = 5 * time.Minute

// memberUser is the user of members' own tokens (Login.member): it may do
// what root may. A NUL byte keeps it apart from every user UserAdd accepts.
const memberUser = "\x00member"

// rootPerms are the permissions of the root role.
var rootPerms = &userPerms{root: true}

// tokenEvent is a login (token and user) or, without a token, the end of
// every token of user.
type tokenEvent struct{ token, user string }

// tokenStore holds the simple tokens this member accepts: assigned when a
// login is applied (so every member knows every token, as etcd's), each
// expiring ttl after its last use on this member.
type tokenStore struct {
	ttl    time.Duration
	mu     sync.Mutex
	tokens map[string]*tokenEntry
	seq    atomic.Uint64
}

type tokenEntry struct {
	user    string
	expires time.Time
}

func newTokenStore(ttl time.Duration) *tokenStore {
	return &tokenStore{ttl: ttl, tokens: map[string]*tokenEntry{}}
}

// newToken returns a fresh token: random letters and a member-local
// sequence number, the shape of etcd's simple tokens.
func (t *tokenStore) newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return fmt.Sprintf("%s.%d", base64.RawURLEncoding.EncodeToString(b[:]), t.seq.Add(1))
}

// apply assigns and ends tokens as the log says.
func (t *tokenStore) apply(evs []tokenEvent) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ev := range evs {
		if ev.token != "" {
			t.tokens[ev.token] = &tokenEntry{user: ev.user, expires: now.Add(t.ttl)}
			continue
		}
		maps.DeleteFunc(t.tokens, func(_ string, e *tokenEntry) bool { return e.user == ev.user })
	}
}

// user returns the user of a valid token and extends its life.
func (t *tokenStore) user(token string) (string, bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.tokens[token]
	if e == nil {
		return "", false
	}
	if now.After(e.expires) {
		delete(t.tokens, token)
		return "", false
	}
	e.expires = now.Add(t.ttl)
	return e.user, true
}

// sweep drops expired tokens.
func (t *tokenStore) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	maps.DeleteFunc(t.tokens, func(_ string, e *tokenEntry) bool { return now.After(e.expires) })
}

// runTokenSweeper drops expired tokens every TTL.
func (s *Server) runTokenSweeper(ctx context.Context) {
	loop.Every(ctx, s.tokens.ttl, s.tokens.sweep)
}

// peerCNKey carries the verified client certificate's common name of a
// request served by net/http (withPeerCert).
type peerCNKey struct{}

// authRevKey carries the auth revision a request's permissions were
// checked at, for Command.auth_revision.
type authRevKey struct{}

// withPeerCert passes the CN of a verified client certificate to the
// services (connect-go does not expose the TLS state) while auth is
// enabled: with auth, the CN is the user of a request without a token
// (etcd's --client-cert-auth).
func (s *Server) withPeerCert(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 && s.fsm.auth.Load().enabled {
			r = r.WithContext(context.WithValue(r.Context(), peerCNKey{}, r.TLS.VerifiedChains[0][0].Subject.CommonName))
		}
		h.ServeHTTP(w, r)
	})
}

// certUser returns the CN of the request's verified client certificate,
// from net/http (withPeerCert) or grpc-go (its peer's TLS info).
func certUser(ctx context.Context) string {
	if cn, ok := ctx.Value(peerCNKey{}).(string); ok {
		return cn
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			return ti.State.VerifiedChains[0][0].Subject.CommonName
		}
	}
	return ""
}

// caller is the user a request comes from and what it may do (perms nil:
// the user does not exist).
type caller struct {
	name  string
	perms *userPerms
}

// caller identifies the user of a request: the token's, or else the client
// certificate's CN; neither is ErrUserEmpty, a bad token ErrInvalidAuthToken.
func (s *Server) caller(ctx context.Context, st *authState, h http.Header) (caller, error) {
	name := ""
	if tok := h.Get(tokenHeader); tok != "" {
		u, ok := s.tokens.user(tok)
		if !ok {
			// A login acknowledged by another member may not be applied
			// here yet: catch up (a read barrier) before refusing, so a
			// token works on every member once Authenticate returned.
			if _, err := s.read(ctx, revQuery{}, false); err == nil {
				u, ok = s.tokens.user(tok)
			}
		}
		if !ok {
			return caller{}, ErrInvalidAuthToken
		}
		name = u
	} else if name = certUser(ctx); name == "" {
		return caller{}, ErrUserEmpty
	}
	if name == memberUser {
		return caller{name: name, perms: rootPerms}, nil
	}
	return caller{name: name, perms: st.perms[name]}, nil
}

// memberToken returns a token for this member's calls to other members
// while auth is enabled ("" while disabled): a login replicated like a
// user's, so every member accepts it.
func (s *Server) memberToken(ctx context.Context) (string, error) {
	if !s.fsm.auth.Load().enabled {
		return "", nil
	}
	tok := s.tokens.newToken()
	login := &raftcmdv1.Login{Token: tok, Member: true}
	err := s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Auth{Auth: &raftcmdv1.Auth{Op: &raftcmdv1.Auth_Login{Login: login}}}})
	return tok, err
}

// check returns ErrPermissionDenied unless the caller may read (or write)
// the range (key, end).
func (c caller) check(write bool, key, end []byte) error {
	if c.perms == nil || !c.perms.allowed(write, key, end) {
		return ErrPermissionDenied
	}
	return nil
}

// admin is etcd's IsAdminPermitted: the caller has the root role.
func (c caller) admin() error {
	switch {
	case c.perms == nil:
		return ErrUserNotFound
	case !c.perms.root:
		return ErrPermissionDenied
	}
	return nil
}

// checkTxn is etcd's checkTxnAuth: read on every compare, and every
// operation of both branches, nested txns included.
func (c caller) checkTxn(t *etcdserverpb.TxnRequest, leaseKeys func(int64) [][]byte) error {
	for _, cmp := range t.Compare {
		if err := c.check(false, cmp.Key, cmp.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]*etcdserverpb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			var err error
			switch r := op.Request.(type) {
			case *etcdserverpb.RequestOp_RequestRange:
				err = c.check(false, r.RequestRange.Key, r.RequestRange.RangeEnd)
			case *etcdserverpb.RequestOp_RequestPut:
				err = c.checkPut(r.RequestPut, leaseKeys)
			case *etcdserverpb.RequestOp_RequestDeleteRange:
				err = c.checkDelete(r.RequestDeleteRange)
			case *etcdserverpb.RequestOp_RequestTxn:
				err = c.checkTxn(r.RequestTxn, leaseKeys)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPut: write on the key, read too for prev_kv, and write on every key
// of the lease it attaches to (etcd's checkLeasePuts).
func (c caller) checkPut(p *etcdserverpb.PutRequest, leaseKeys func(int64) [][]byte) error {
	if err := c.check(true, p.Key, nil); err != nil {
		return err
	}
	if p.PrevKv {
		if err := c.check(false, p.Key, nil); err != nil {
			return err
		}
	}
	if p.Lease != 0 {
		return c.checkKeys(true, leaseKeys(p.Lease))
	}
	return nil
}

func (c caller) checkDelete(d *etcdserverpb.DeleteRangeRequest) error {
	if d.PrevKv {
		if err := c.check(false, d.Key, d.RangeEnd); err != nil {
			return err
		}
	}
	return c.check(true, d.Key, d.RangeEnd)
}

func (c caller) checkKeys(write bool, keys [][]byte) error {
	if c.perms != nil && c.perms.root {
		return nil
	}
	for _, k := range keys {
		if err := c.check(write, k, nil); err != nil {
			return err
		}
	}
	return nil
}

// leaseKeys returns the keys attached to a lease on this member.
func (s *Server) leaseKeys(id int64) [][]byte {
	keys, err := s.fsm.st.LeaseKeys(s.cfg.DB, id)
	if err != nil {
		s.log.Debug("Cannot read a lease's keys for a permission check", "lease", id, "err", err)
	}
	return keys
}

// authorize checks a unary request of the etcd services against the
// caller's permissions (etcd's checks in v3_server.go and apply_auth.go).
// Requests that change state carry the auth revision of the check
// (authRevKey). Requests etcd does not check pass.
func (s *Server) authorize(ctx context.Context, st *authState, h http.Header, msg any) (context.Context, error) {
	var check func(c caller) error
	switch r := msg.(type) {
	case *etcdserverpb.RangeRequest:
		check = func(c caller) error { return c.check(false, r.Key, r.RangeEnd) }
	case *etcdserverpb.PutRequest:
		check = func(c caller) error { return c.checkPut(r, s.leaseKeys) }
	case *etcdserverpb.DeleteRangeRequest:
		check = func(c caller) error { return c.checkDelete(r) }
	case *etcdserverpb.TxnRequest:
		check = func(c caller) error { return c.checkTxn(r, s.leaseKeys) }
	case *etcdserverpb.LeaseRevokeRequest:
		check = func(c caller) error { return c.checkKeys(true, s.leaseKeys(r.ID)) }
	case *etcdserverpb.LeaseTimeToLiveRequest:
		check = func(c caller) error { return c.checkKeys(false, s.leaseKeys(r.ID)) }
	case *etcdserverpb.AlarmRequest:
		if r.Action == etcdserverpb.AlarmRequest_GET {
			return ctx, nil
		}
		check = caller.admin
	case *etcdserverpb.CompactionRequest, *etcdserverpb.DefragmentRequest, *etcdserverpb.HashRequest,
		*etcdserverpb.HashKVRequest, *etcdserverpb.MoveLeaderRequest, *etcdserverpb.DowngradeRequest,
		*etcdserverpb.MemberAddRequest, *etcdserverpb.MemberRemoveRequest, *etcdserverpb.MemberUpdateRequest,
		*etcdserverpb.MemberPromoteRequest,
		// centra's own ClusterService (`centra cluster ...`): the same
		// membership changes as etcd's Cluster service, so the same rule.
		*chainfirev1.AddMemberRequest, *chainfirev1.RemoveMemberRequest,
		*chainfirev1.PromoteMemberRequest, *chainfirev1.TransferLeaderRequest:
		check = caller.admin
	default:
		return ctx, nil
	}
	c, err := s.caller(ctx, st, h)
	if err != nil {
		return ctx, err
	}
	if err := check(c); err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, authRevKey{}, st.revision), nil
}

// authInterceptor enforces permissions on every etcd service call while
// auth is enabled; disabled, it costs one atomic load.
type authInterceptor struct{ s *Server }

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		st := i.s.fsm.auth.Load()
		if !st.enabled {
			return next(ctx, req)
		}
		ctx, err := i.s.authorize(ctx, st, req.Header(), req.Any())
		if err != nil {
			return nil, toConnectError(err)
		}
		return next(ctx, req)
	}
}

func (i authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// snapshotProcedure is the only streaming call that needs the root role
// (watches are checked per watcher, keep-alives are not checked, as etcd).
const snapshotProcedure = "/etcdserverpb.Maintenance/Snapshot"

func (i authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if st := i.s.fsm.auth.Load(); st.enabled && conn.Spec().Procedure == snapshotProcedure {
			c, err := i.s.caller(ctx, st, conn.RequestHeader())
			if err == nil {
				err = c.admin()
			}
			if err != nil {
				return toConnectError(err)
			}
		}
		return next(ctx, conn)
	}
}

// watchPermitted is etcd's isWatchPermitted: "" when the stream's user may
// read the watched range, else the cancel reason.
func (s *Server) watchPermitted(ctx context.Context, h http.Header, c *etcdserverpb.WatchCreateRequest) string {
	st := s.fsm.auth.Load()
	if !st.enabled {
		return ""
	}
	cl, err := s.caller(ctx, st, h)
	if err == nil {
		err = cl.check(false, c.Key, c.RangeEnd)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// authService implements etcdserverpb.Auth with etcd 3.5's semantics.
type authService struct{ s *Server }

// admin requires the root role while auth is enabled and returns ctx with
// the auth revision of the check.
func (a *authService) admin(ctx context.Context, h http.Header) (context.Context, error) {
	st := a.s.fsm.auth.Load()
	if !st.enabled {
		return ctx, nil
	}
	c, err := a.s.caller(ctx, st, h)
	if err == nil {
		err = c.admin()
	}
	if err != nil {
		return ctx, toConnectError(err)
	}
	return context.WithValue(ctx, authRevKey{}, st.revision), nil
}

// proposeAuth proposes an auth command after the admin check; its result
// is a header, decoded into T.
func proposeAuth[T any, R response[T]](ctx context.Context, a *authService, h http.Header, op *raftcmdv1.Auth) (*connect.Response[T], error) {
	ctx, err := a.admin(ctx, h)
	if err != nil {
		return nil, err
	}
	return write[T, R](ctx, a.s, "auth", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Auth{Auth: op}})
}

// state returns the auth state after a linearizable read barrier (changes
// acknowledged anywhere are visible).
func (a *authService) state(ctx context.Context) (*authState, error) {
	if _, err := a.s.read(ctx, revQuery{}, false); err != nil {
		return nil, toConnectError(err)
	}
	return a.s.fsm.auth.Load(), nil
}

// adminState is state for the root role only (while auth is enabled).
func (a *authService) adminState(ctx context.Context, h http.Header) (*authState, error) {
	if _, err := a.admin(ctx, h); err != nil {
		return nil, err
	}
	return a.state(ctx)
}

// hashPassword is bcrypt of a password, base64 as etcd puts it in the log.
func hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", toConnectError(fmt.Errorf("chainfire: hash password: %w", err))
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

func (a *authService) AuthEnable(ctx context.Context, req *connect.Request[etcdserverpb.AuthEnableRequest]) (*connect.Response[etcdserverpb.AuthEnableResponse], error) {
	return proposeAuth[etcdserverpb.AuthEnableResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_Enable{Enable: req.Msg}})
}

func (a *authService) AuthDisable(ctx context.Context, req *connect.Request[etcdserverpb.AuthDisableRequest]) (*connect.Response[etcdserverpb.AuthDisableResponse], error) {
	return proposeAuth[etcdserverpb.AuthDisableResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_Disable{Disable: req.Msg}})
}

func (a *authService) AuthStatus(ctx context.Context, req *connect.Request[etcdserverpb.AuthStatusRequest]) (*connect.Response[etcdserverpb.AuthStatusResponse], error) {
	st, err := a.adminState(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&etcdserverpb.AuthStatusResponse{Header: a.s.header(nil), Enabled: st.enabled, AuthRevision: st.revision}), nil
}

// Authenticate checks the password here (bcrypt costs tens of
// milliseconds: never in apply) and replicates the login, so the token is
// valid on every member.
func (a *authService) Authenticate(ctx context.Context, req *connect.Request[etcdserverpb.AuthenticateRequest]) (*connect.Response[etcdserverpb.AuthenticateResponse], error) {
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	if !st.enabled {
		return nil, toConnectError(ErrAuthNotEnabled)
	}
	u := st.users[req.Msg.Name]
	if u == nil || (u.Options != nil && u.Options.NoPassword) || bcrypt.CompareHashAndPassword(u.Password, []byte(req.Msg.Password)) != nil {
		return nil, toConnectError(ErrAuthFailed)
	}
	tok := a.s.tokens.newToken()
	resp, err := write[etcdserverpb.AuthenticateResponse](ctx, a.s, "authenticate", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Auth{Auth: &raftcmdv1.Auth{Op: &raftcmdv1.Auth_Login{Login: &raftcmdv1.Login{Name: req.Msg.Name, Token: tok}}}}})
	if err != nil {
		return nil, err
	}
	resp.Msg.Token = tok
	return resp, nil
}

func (a *authService) UserAdd(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserAddRequest]) (*connect.Response[etcdserverpb.AuthUserAddResponse], error) {
	if req.Msg.Name == "" {
		return nil, toConnectError(ErrUserEmpty)
	}
	if strings.ContainsRune(req.Msg.Name, 0) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("chainfire: user names cannot contain a NUL byte"))
	}
	r := &etcdserverpb.AuthUserAddRequest{Name: req.Msg.Name, Options: req.Msg.Options}
	if r.Options == nil || !r.Options.NoPassword {
		var err error
		if r.HashedPassword, err = hashPassword(req.Msg.Password); err != nil {
			return nil, err
		}
	}
	return proposeAuth[etcdserverpb.AuthUserAddResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserAdd{UserAdd: r}})
}

func (a *authService) UserGet(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserGetRequest]) (*connect.Response[etcdserverpb.AuthUserGetResponse], error) {
	// etcd: a user may read itself without the root role.
	if err := a.selfOr(ctx, req.Header(), func(c caller) bool { return c.name == req.Msg.Name }); err != nil {
		return nil, err
	}
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	u := st.users[req.Msg.Name]
	if u == nil {
		return nil, toConnectError(ErrUserNotFound)
	}
	return connect.NewResponse(&etcdserverpb.AuthUserGetResponse{Header: a.s.header(nil), Roles: slices.Clone(u.Roles)}), nil
}

// selfOr requires the root role unless mine holds for the caller.
func (a *authService) selfOr(ctx context.Context, h http.Header, mine func(caller) bool) error {
	st := a.s.fsm.auth.Load()
	if !st.enabled {
		return nil
	}
	c, err := a.s.caller(ctx, st, h)
	if err == nil && !mine(c) {
		err = c.admin()
	}
	return toConnectError(err)
}

func (a *authService) UserList(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserListRequest]) (*connect.Response[etcdserverpb.AuthUserListResponse], error) {
	st, err := a.adminState(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&etcdserverpb.AuthUserListResponse{Header: a.s.header(nil), Users: slices.Sorted(maps.Keys(st.users))}), nil
}

func (a *authService) UserDelete(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserDeleteRequest]) (*connect.Response[etcdserverpb.AuthUserDeleteResponse], error) {
	return proposeAuth[etcdserverpb.AuthUserDeleteResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserDelete{UserDelete: req.Msg}})
}

func (a *authService) UserChangePassword(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserChangePasswordRequest]) (*connect.Response[etcdserverpb.AuthUserChangePasswordResponse], error) {
	hashed, err := hashPassword(req.Msg.Password)
	if err != nil {
		return nil, err
	}
	r := &etcdserverpb.AuthUserChangePasswordRequest{Name: req.Msg.Name, HashedPassword: hashed}
	return proposeAuth[etcdserverpb.AuthUserChangePasswordResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserChangePassword{UserChangePassword: r}})
}

func (a *authService) UserGrantRole(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserGrantRoleRequest]) (*connect.Response[etcdserverpb.AuthUserGrantRoleResponse], error) {
	return proposeAuth[etcdserverpb.AuthUserGrantRoleResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserGrantRole{UserGrantRole: req.Msg}})
}

func (a *authService) UserRevokeRole(ctx context.Context, req *connect.Request[etcdserverpb.AuthUserRevokeRoleRequest]) (*connect.Response[etcdserverpb.AuthUserRevokeRoleResponse], error) {
	return proposeAuth[etcdserverpb.AuthUserRevokeRoleResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_UserRevokeRole{UserRevokeRole: req.Msg}})
}

func (a *authService) RoleAdd(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleAddRequest]) (*connect.Response[etcdserverpb.AuthRoleAddResponse], error) {
	return proposeAuth[etcdserverpb.AuthRoleAddResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleAdd{RoleAdd: req.Msg}})
}

func (a *authService) RoleGet(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleGetRequest]) (*connect.Response[etcdserverpb.AuthRoleGetResponse], error) {
	// etcd: a user may read the roles it has without the root role.
	if err := a.selfOr(ctx, req.Header(), func(c caller) bool {
		u := a.s.fsm.auth.Load().users[c.name]
		return u != nil && slices.Contains(u.Roles, req.Msg.Role)
	}); err != nil {
		return nil, err
	}
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	r := st.roles[req.Msg.Role]
	if r == nil {
		return nil, toConnectError(ErrRoleNotFound)
	}
	perms := make([]*authpb.Permission, len(r.KeyPermission))
	for i, p := range r.KeyPermission {
		perms[i] = &authpb.Permission{PermType: p.PermType, Key: p.Key, RangeEnd: p.RangeEnd}
	}
	return connect.NewResponse(&etcdserverpb.AuthRoleGetResponse{Header: a.s.header(nil), Perm: perms}), nil
}

func (a *authService) RoleList(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleListRequest]) (*connect.Response[etcdserverpb.AuthRoleListResponse], error) {
	st, err := a.adminState(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&etcdserverpb.AuthRoleListResponse{Header: a.s.header(nil), Roles: slices.Sorted(maps.Keys(st.roles))}), nil
}

func (a *authService) RoleDelete(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleDeleteRequest]) (*connect.Response[etcdserverpb.AuthRoleDeleteResponse], error) {
	return proposeAuth[etcdserverpb.AuthRoleDeleteResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleDelete{RoleDelete: req.Msg}})
}

func (a *authService) RoleGrantPermission(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleGrantPermissionRequest]) (*connect.Response[etcdserverpb.AuthRoleGrantPermissionResponse], error) {
	return proposeAuth[etcdserverpb.AuthRoleGrantPermissionResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleGrantPermission{RoleGrantPermission: req.Msg}})
}

func (a *authService) RoleRevokePermission(ctx context.Context, req *connect.Request[etcdserverpb.AuthRoleRevokePermissionRequest]) (*connect.Response[etcdserverpb.AuthRoleRevokePermissionResponse], error) {
	return proposeAuth[etcdserverpb.AuthRoleRevokePermissionResponse](ctx, a, req.Header(), &raftcmdv1.Auth{Op: &raftcmdv1.Auth_RoleRevokePermission{RoleRevokePermission: req.Msg}})
}
