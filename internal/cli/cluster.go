package cli

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect the Chainfire cluster (members, raft status)",
		Subcommands: []*cli.Command{
			{Name: "member-list", Usage: "list the members of the metadata shard", Flags: clientFlags(), Action: memberList},
			{Name: "status", Usage: "raft status of the endpoint's node (leader, term, index)", Flags: clientFlags(), Action: status},
		},
	}
}

func memberList(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	var resp *etcdserverpb.MemberListResponse
	if err := cn.each(c.Context, func(ctx context.Context, url string) error {
		r, err := etcdserverpbconnect.NewClusterClient(cn.http, url, connect.WithGRPC()).MemberList(ctx, connect.NewRequest(&etcdserverpb.MemberListRequest{Linearizable: true}))
		if err == nil {
			resp = r.Msg
		}
		return err
	}); err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		for _, m := range resp.Members {
			fmt.Fprintf(w, "ID=%d, Name=%s, PeerURLs=[%s], IsLearner=%t\n", m.ID, m.Name, strings.Join(m.PeerURLs, ","), m.IsLearner)
		}
	})
}

// status prints the runbook's status lines for the first endpoint that
// answers (each endpoint reports its own node's view).
func status(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	var resp *etcdserverpb.StatusResponse
	if err := cn.each(c.Context, func(ctx context.Context, url string) error {
		r, err := etcdserverpbconnect.NewMaintenanceClient(cn.http, url, connect.WithGRPC()).Status(ctx, connect.NewRequest(&etcdserverpb.StatusRequest{}))
		if err == nil {
			resp = r.Msg
		}
		return err
	}); err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		leader := "none"
		if resp.Leader != 0 {
			leader = fmt.Sprint(resp.Leader)
		}
		fmt.Fprintf(w, "member_id: %d\nleader: %s\nraft_term: %d\nraft_index: %d\nraft_applied_index: %d\nis_learner: %t\nrevision: %d\ndb_size: %d\nversion: %s\n",
			resp.Header.GetMemberId(), leader, resp.RaftTerm, resp.RaftIndex, resp.RaftAppliedIndex, resp.IsLearner, resp.Header.GetRevision(), resp.DbSize, resp.Version)
		for _, e := range resp.Errors {
			fmt.Fprintf(w, "error: %s\n", e)
		}
	})
}
