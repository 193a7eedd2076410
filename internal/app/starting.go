package app

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

// startingStatus answers Maintenance.Status (chainfire-client status,
// etcdctl endpoint status) while the node starts, waits to be added or
// starts its replica after a member-add, before Chainfire serves: with what
// the node knows (no leader, no raft index yet, and what it is doing)
// rather than HTTP 503.
type startingStatus struct {
	etcdserverpbconnect.UnimplementedMaintenanceHandler
	a *App
}

func (s startingStatus) Status(context.Context, *connect.Request[etcdserverpb.StatusRequest]) (*connect.Response[etcdserverpb.StatusResponse], error) {
	c := &s.a.cfg
	return connect.NewResponse(&etcdserverpb.StatusResponse{
		Header:         &etcdserverpb.ResponseHeader{ClusterId: c.Cluster.ID, MemberId: c.Node.ID},
		Version:        chainfire.Version,
		StorageVersion: chainfire.Version,
		IsLearner:      s.a.joiningLearner.Load(),
		Errors:         []string{chainfire.ErrNoLeader.Error(), s.a.startPhase()},
	}), nil
}

// startPhase says what a node that does not serve yet is doing.
func (a *App) startPhase() string {
	if p := a.phase.Load(); p != nil {
		return *p
	}
	return "starting"
}

// setPhase records what the starting node is doing (see startPhase).
func (a *App) setPhase(format string, args ...any) {
	p := fmt.Sprintf(format, args...)
	a.phase.Store(&p)
}
