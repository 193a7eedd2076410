package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect the Chainfire cluster (members, raft status)",
		Subcommands: []*cli.Command{
			{Name: "member-list", Usage: "list the members of the metadata shard", Flags: clientFlags(), Action: memberList},
			{
				Name: "member-add", Usage: "add a node (started with bootstrap = false) as a voter or learner",
				Flags: append(clientFlags(),
					&cli.Uint64Flag{Name: "node-id", Required: true, Usage: "the new node's [node] id"},
					&cli.StringFlag{Name: "peer-url", Required: true, Usage: "the new node's raft address, HOST:PORT"},
					&cli.BoolFlag{Name: "learner", Usage: "add as a non-voting learner (promote it later)"},
					&cli.BoolFlag{Name: "voter", Usage: "add as a voter (the default)"}),
				Action: memberAdd,
			},
			{
				Name: "member-promote", Usage: "make a caught-up learner a voter",
				Flags: append(clientFlags(),
					&cli.Uint64Flag{Name: "node-id", Required: true, Usage: "the learner's node id"},
					&cli.BoolFlag{Name: "wait", Usage: "wait until the learner caught up instead of failing"}),
				Action: memberPromote,
			},
			{
				Name: "member-remove", Usage: "remove a node; its replica ID is never reused",
				Flags:  append(clientFlags(), &cli.Uint64Flag{Name: "node-id", Required: true, Usage: "the node to remove"}),
				Action: memberRemove,
			},
			{
				Name: "leader-transfer", Usage: "hand the metadata shard's leadership to a voter",
				Flags:  append(clientFlags(), &cli.Uint64Flag{Name: "node-id", Required: true, Usage: "the voter to lead"}),
				Action: leaderTransfer,
			},
			{Name: "status", Usage: "raft status of the endpoint's node (leader, term, index)", Flags: clientFlags(), Action: status},
		},
	}
}

func memberList(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewClusterClient, &etcdserverpb.MemberListRequest{Linearizable: true}, etcdserverpbconnect.ClusterClient.MemberList)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		for _, m := range resp.Members {
			peers := make([]string, len(m.PeerURLs))
			for i, u := range m.PeerURLs {
				peers[i] = raftAddr(u)
			}
			fmt.Fprintf(w, "ID=%d, Name=%s, PeerURLs=[%s], IsLearner=%t\n", m.ID, m.Name, strings.Join(peers, ","), m.IsLearner)
		}
	})
}

// raftAddr strips the scheme etcd's API puts on peer URLs: the runbook's
// member list shows raft addresses (HOST:PORT), the form member-add takes.
func raftAddr(peerURL string) string {
	return strings.TrimPrefix(strings.TrimPrefix(peerURL, "http://"), "https://")
}

// status prints the runbook's status lines for the first endpoint that
// answers (each endpoint reports its own node's view).
func status(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewMaintenanceClient, &etcdserverpb.StatusRequest{}, etcdserverpbconnect.MaintenanceClient.Status)
	if err != nil {
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

func memberAdd(c *cli.Context) error {
	if c.Bool("learner") && c.Bool("voter") {
		return exitf("member-add: --voter and --learner exclude each other")
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, chainfirev1connect.NewClusterServiceClient, &chainfirev1.AddMemberRequest{NodeId: c.Uint64("node-id"), PeerUrl: c.String("peer-url"), IsLearner: c.Bool("learner")}, chainfirev1connect.ClusterServiceClient.AddMember)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		urls := make([]string, len(resp.Member.PeerUrls))
		for i, u := range resp.Member.PeerUrls {
			urls[i] = strconv.Quote(u)
		}
		fmt.Fprintf(w, "Node added: id=%d, peer_urls=[%s]\n", resp.Member.NodeId, strings.Join(urls, ", "))
	})
}

func memberPromote(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	req := &chainfirev1.PromoteMemberRequest{NodeId: c.Uint64("node-id")}
	for {
		resp, err := call(c.Context, cn, chainfirev1connect.NewClusterServiceClient, req, chainfirev1connect.ClusterServiceClient.PromoteMember)
		if err != nil && c.Bool("wait") && strings.Contains(err.Error(), "in sync with leader") {
			fmt.Fprintf(c.App.ErrWriter, "waiting: %v\n", err)
			select {
			case <-c.Context.Done():
				return c.Context.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		if err != nil {
			return err
		}
		w := stdoutOf(c)
		return cn.print(w, resp, func() { fmt.Fprintf(w, "Node promoted: id=%d, IsLearner=false\n", resp.Member.NodeId) })
	}
}

func memberRemove(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, chainfirev1connect.NewClusterServiceClient, &chainfirev1.RemoveMemberRequest{NodeId: c.Uint64("node-id")}, chainfirev1connect.ClusterServiceClient.RemoveMember)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() { fmt.Fprintf(w, "Node removed: id=%d\n", c.Uint64("node-id")) })
}

func leaderTransfer(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, chainfirev1connect.NewClusterServiceClient, &chainfirev1.TransferLeaderRequest{NodeId: c.Uint64("node-id")}, chainfirev1connect.ClusterServiceClient.TransferLeader)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() { fmt.Fprintf(w, "Leader transferred: leader=%d\n", resp.LeaderId) })
}
