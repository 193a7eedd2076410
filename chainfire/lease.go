package chainfire

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/loop"
)

// leaseService implements etcdserverpb.Lease. Grants and revokes go through
// raft from any member; keep-alives and time-to-live need the leader's
// deadlines, so followers forward them to the leader.
type leaseService struct{ s *Server }

// expiryInterval is how often the leader looks for expired leases, and
// expiryBatch how many it revokes per proposal.
const (
	expiryInterval = 250 * time.Millisecond
	expiryBatch    = 500
)

// newLeaseID returns a random positive lease ID. The proposer picks it, so
// applying the grant stays deterministic.
func newLeaseID() int64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
		if id := int64(binary.BigEndian.Uint64(b[:]) >> 1); id != 0 {
			return id
		}
	}
}

func (l *leaseService) LeaseGrant(ctx context.Context, req *connect.Request[etcdserverpb.LeaseGrantRequest]) (*connect.Response[etcdserverpb.LeaseGrantResponse], error) {
	g := &etcdserverpb.LeaseGrantRequest{ID: req.Msg.ID, TTL: req.Msg.TTL}
	if g.TTL > MaxLeaseTTL {
		return nil, toConnectError(ErrLeaseTTLTooLarge)
	}
	if g.TTL < l.s.cfg.MinLeaseTTL {
		g.TTL = l.s.cfg.MinLeaseTTL
	}
	if g.ID == 0 {
		g.ID = newLeaseID()
	}
	return write[etcdserverpb.LeaseGrantResponse](ctx, l.s, "lease-grant", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_LeaseGrant{LeaseGrant: g}})
}

func (l *leaseService) LeaseRevoke(ctx context.Context, req *connect.Request[etcdserverpb.LeaseRevokeRequest]) (*connect.Response[etcdserverpb.LeaseRevokeResponse], error) {
	return write[etcdserverpb.LeaseRevokeResponse](ctx, l.s, "lease-revoke", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_LeaseRevoke{LeaseRevoke: req.Msg}})
}

func (l *leaseService) LeaseKeepAlive(ctx context.Context, stream *connect.BidiStream[etcdserverpb.LeaseKeepAliveRequest, etcdserverpb.LeaseKeepAliveResponse]) error {
	return l.s.serveKeepAlive(ctx, stream)
}

// serveKeepAlive serves one LeaseKeepAlive stream, from Connect
// (leaseService) or grpc-go (registerGRPCStreams).
func (s *Server) serveKeepAlive(ctx context.Context, stream bidiStream[etcdserverpb.LeaseKeepAliveRequest, etcdserverpb.LeaseKeepAliveResponse]) error {
	for {
		req, err := stream.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		ttl, err := s.renew(ctx, req.ID)
		if err != nil {
			return toConnectError(err)
		}
		if err := stream.Send(&etcdserverpb.LeaseKeepAliveResponse{Header: s.header(nil), ID: req.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}

// renew renews a lease on the leader (forwarding when this node is not) and
// returns its TTL, or 0 when the lease does not exist (etcd's answer).
//
// A leader first confirms its leadership with a ReadIndex round (etcd's
// ensureLeadership, etcd 3.5.8+): a leader cut off or paused may still
// think it leads after a new leader was elected, and a renewal it
// acknowledged would be one the new leader never saw, which expires the
// lease before the TTL the client was promised (found by the fault suite,
// pause-leader). A confirmed renewal is safe: a new leader can only be
// elected after the confirmation and extends every lease by its full TTL
// when it takes over (Lessor.Promote).
func (s *Server) renew(ctx context.Context, id int64) (int64, error) {
	var err error
	if s.lessor.IsPrimary() {
		err = s.confirmLeadership(ctx)
	}
	var ttl int64
	if err == nil {
		ttl, err = s.lessor.Renew(id)
	}
	switch {
	case err == nil:
		return ttl, nil
	case errors.Is(err, lease.ErrNotFound):
		return 0, nil
	case errors.Is(err, lease.ErrNotPrimary):
		ctx, cancel := s.withTimeout(ctx)
		defer cancel()
		url, err := s.leaderURL(ctx)
		if err != nil {
			return 0, err
		}
		return s.fwd.keepAlive(ctx, url, id)
	}
	return 0, err
}

func (l *leaseService) LeaseTimeToLive(ctx context.Context, req *connect.Request[etcdserverpb.LeaseTimeToLiveRequest]) (*connect.Response[etcdserverpb.LeaseTimeToLiveResponse], error) {
	if !l.s.lessor.IsPrimary() {
		ctx, cancel := l.s.withTimeout(ctx)
		defer cancel()
		url, err := l.s.leaderURL(ctx)
		if err != nil {
			return nil, toConnectError(err)
		}
		tok := req.Header().Get(tokenHeader)
		if tok == "" {
			// Authorized here (with auth enabled, a client known by its
			// certificate): the leader would see this member's certificate
			// instead, so the call carries this member's own token.
			if tok, err = l.s.memberToken(ctx); err != nil {
				return nil, toConnectError(err)
			}
		}
		resp, err := l.s.fwd.timeToLive(ctx, url, req.Msg, tok)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(resp), nil
	}
	resp := &etcdserverpb.LeaseTimeToLiveResponse{ID: req.Msg.ID, TTL: -1}
	out, err := l.s.read(ctx, leaseQuery{id: req.Msg.ID}, false)
	switch {
	case errors.Is(err, mvcc.ErrLeaseNotFound):
	case err != nil:
		return nil, toConnectError(err)
	default:
		info := out.(leaseInfo)
		granted, remaining, err := l.s.lessor.Remaining(req.Msg.ID)
		if err != nil && !errors.Is(err, lease.ErrNotFound) {
			return nil, toConnectError(err)
		}
		if err == nil {
			resp.GrantedTTL, resp.TTL = granted, remaining
		} else {
			resp.GrantedTTL = info.ttl
		}
		if req.Msg.Keys {
			resp.Keys = info.keys
		}
	}
	resp.Header = l.s.header(nil)
	return connect.NewResponse(resp), nil
}

func (l *leaseService) LeaseLeases(ctx context.Context, req *connect.Request[etcdserverpb.LeaseLeasesRequest]) (*connect.Response[etcdserverpb.LeaseLeasesResponse], error) {
	out, err := l.s.read(ctx, leasesQuery{}, false)
	if err != nil {
		return nil, toConnectError(err)
	}
	resp := &etcdserverpb.LeaseLeasesResponse{Header: l.s.header(nil)}
	for _, li := range out.([]leaseInfo) {
		resp.Leases = append(resp.Leases, &etcdserverpb.LeaseStatus{ID: li.id})
	}
	return connect.NewResponse(resp), nil
}

// runLeaseExpiry proposes the expiry of leases whose deadline passed, while
// this node leads the metadata shard.
func (s *Server) runLeaseExpiry(ctx context.Context) {
	loop.Every(ctx, expiryInterval, func(time.Time) {
		for {
			ids := s.lessor.Expired(expiryBatch)
			if len(ids) == 0 {
				break
			}
			// A leader resumed after a pause (or cut off) still counts
			// deadlines the new leader extended; its expiry, forwarded to
			// the new leader once it stepped down, would revoke live
			// leases. Confirmed after the deadlines were read, no other
			// leader can have renewed them before they passed.
			err := s.confirmLeadership(ctx)
			if err == nil {
				err = s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_LeaseExpire{LeaseExpire: &raftcmdv1.LeaseExpire{Ids: ids}}})
			}
			if err != nil {
				s.lessor.Unmark(ids)
				if ctx.Err() == nil {
					s.log.Warn("Lease expiry proposal failed; retrying", "leases", len(ids), "err", err)
				}
				break
			}
			s.log.Debug("Leases expired", "leases", len(ids))
		}
	})
}
