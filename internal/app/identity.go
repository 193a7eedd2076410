package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/centra-cloud/centra/chainfire"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// identity is who this node is in the metadata shard.
type identity struct {
	replicaID uint64
	advertise string            // the raft address peers dial
	members   map[uint64]string // bootstrap members (new cluster only)
	join      bool              // joining an existing shard for the first time
	learner   bool
}

// memberFile is where a node that joined through the handshake keeps its
// identity (its replica ID differs from its node ID after a re-add).
const memberFile = "member.json"

type memberRecord struct {
	ClusterID   uint64 `json:"cluster_id"`
	NodeID      uint64 `json:"node_id"`
	ReplicaID   uint64 `json:"replica_id"`
	RaftAddress string `json:"raft_address"`
	Learner     bool   `json:"learner"`
}

// identity decides this node's replica ID and raft address:
//   - a node that joined before reads them from member.json;
//   - a bootstrap node is replica [node] id at its initial_members address
//     (or alone at raft_addr when initial_members is empty);
//   - a new node with bootstrap = false waits for the join handshake on its
//     raft address until a member adds it (or ctx ends).
func (a *App) identity(ctx context.Context) (identity, error) {
	c := &a.cfg
	path := filepath.Join(c.EffectiveDataDir(), memberFile)
	if data, err := os.ReadFile(path); err == nil {
		var r memberRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return identity{}, fmt.Errorf("centra: %s is corrupt (%v); restore it, or wipe the data directory and re-add this node", path, err)
		}
		if r.NodeID != c.Node.ID || r.ClusterID != c.Cluster.ID {
			return identity{}, fmt.Errorf("centra: %s belongs to node %d of cluster %d but the config says node %d of cluster %d; fix [node] id / [cluster] id or wipe the data directory", path, r.NodeID, r.ClusterID, c.Node.ID, c.Cluster.ID)
		}
		a.replicaID = r.ReplicaID
		return identity{replicaID: r.ReplicaID, advertise: r.RaftAddress, learner: r.Learner}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return identity{}, fmt.Errorf("centra: read %s: %w", path, err)
	}
	hasRaftData := false
	if entries, _ := os.ReadDir(c.RaftDir()); len(entries) > 0 {
		hasRaftData = true
	}
	if !hasRaftData {
		if err := checkRestored(c); err != nil {
			return identity{}, err
		}
	}
	if c.Cluster.Bootstrap {
		id, err := a.bootstrapIdentity()
		if err != nil || hasRaftData || len(id.members) < 2 {
			return id, err
		}
		return a.discoverBootstrap(ctx, id, path)
	}
	if hasRaftData {
		return identity{}, fmt.Errorf("centra: %s holds raft data but %s is missing, so this node's replica ID is unknown; wipe the data directory and add the node again with member-add", c.RaftDir(), path)
	}
	return a.waitForJoin(ctx, path)
}

// discoverBootstrap runs before a node with bootstrap = true and no raft
// data bootstraps: a cluster may already run at the other initial members
// (this node lost its data, or starts after the others formed the cluster).
// See chainfire.DiscoverBootstrap: it returns boot unchanged to bootstrap,
// or the identity a member handed over to join.
func (a *App) discoverBootstrap(ctx context.Context, boot identity, path string) (identity, error) {
	c := &a.cfg
	lis, tlsConfig, err := a.handshakeListener()
	if err != nil {
		return identity{}, err
	}
	clientTLS, err := a.clientTLS()
	if err != nil {
		lis.Close()
		return identity{}, err
	}
	a.setPhase("asking the other initial members whether a cluster already runs before bootstrapping")
	peers := map[uint64]string{}
	for id, addr := range boot.members {
		if id != c.Node.ID {
			peers[id] = addr
		}
	}
	out, err := chainfire.DiscoverBootstrap(ctx, lis, chainfire.DiscoverConfig{
		ClusterID: c.Cluster.ID, NodeID: c.Node.ID, Peers: peers, PeerURL: boot.advertise,
		ServerTLS: tlsConfig, ClientTLS: clientTLS, Log: a.log,
	})
	if err != nil || out.Bootstrap {
		return boot, err
	}
	return a.joined(path, out.Join)
}

func (a *App) bootstrapIdentity() (identity, error) {
	c := &a.cfg
	ms, err := c.BootstrapMembers()
	if err != nil {
		return identity{}, err
	}
	members := map[uint64]string{}
	for _, m := range ms {
		members[m.ID] = m.Addr
	}
	advertise := members[c.Node.ID]
	if host, _, _ := net.SplitHostPort(advertise); host == "" || net.ParseIP(host).IsUnspecified() {
		return identity{}, fmt.Errorf("centra: node %d has no routable raft address: list it in [cluster] initial_members as \"%d=HOST:PORT\" or set [network] raft_addr to an address peers can dial (not %q)", c.Node.ID, c.Node.ID, advertise)
	}
	a.replicaID = c.Node.ID
	return identity{replicaID: c.Node.ID, advertise: advertise, members: members}, nil
}

// waitForJoin serves the join handshake on the raft address until a member
// adds this node, then records the identity it received.
func (a *App) waitForJoin(ctx context.Context, path string) (identity, error) {
	c := &a.cfg
	lis, tlsConfig, err := a.handshakeListener()
	if err != nil {
		return identity{}, err
	}
	host, port, _ := net.SplitHostPort(c.Network.RaftAddr)
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = "THIS_NODE_IP"
	}
	addCmd := "centra cluster member-add --node-id " + fmt.Sprint(c.Node.ID) + " --peer-url " + net.JoinHostPort(host, port) + " [--learner]"
	a.setPhase("waiting to be added to a cluster; on any member run: %s", addCmd)
	a.log.Info("Waiting to be added to a cluster (bootstrap = false); on any member run: "+addCmd,
		"node_id", c.Node.ID, "listen", c.Network.RaftAddr)
	info, err := chainfire.WaitForJoin(ctx, lis, tlsConfig, c.Cluster.ID, c.Node.ID, a.log)
	if err != nil {
		return identity{}, err
	}
	return a.joined(path, info)
}

// handshakeListener listens on the raft address for the join handshake,
// with the TLS configuration to serve it (nil without TLS).
func (a *App) handshakeListener() (net.Listener, *tls.Config, error) {
	c := &a.cfg
	lis, err := net.Listen("tcp", c.Network.RaftAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("centra: listen on [network] raft_addr %s for the join handshake: %w", c.Network.RaftAddr, err)
	}
	var tlsConfig *tls.Config
	if t := c.Network.TLS; t.Enabled() {
		t.RequireClientCert = true // only cluster members may hand out identities
		if tlsConfig, err = centratls.ServerConfig(t); err != nil {
			lis.Close()
			return nil, nil, err
		}
	}
	return lis, tlsConfig, nil
}

// joined records the identity a member handed over in the join handshake
// and returns it.
func (a *App) joined(path string, info chainfire.JoinInfo) (identity, error) {
	c := &a.cfg
	a.joiningLearner.Store(info.Learner)
	a.setPhase("added to the cluster as replica %d; starting its replica and catching up from the leader", info.ReplicaID)
	rec := memberRecord{ClusterID: c.Cluster.ID, NodeID: c.Node.ID, ReplicaID: info.ReplicaID, RaftAddress: info.PeerURL, Learner: info.Learner}
	if err := writeFileAtomic(path, rec); err != nil {
		return identity{}, err
	}
	a.replicaID = info.ReplicaID
	return identity{replicaID: info.ReplicaID, advertise: info.PeerURL, join: true, learner: info.Learner}, nil
}

// writeFileAtomic writes v as JSON to path durably: temp file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("centra: write %s: %w", tmp, err)
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("centra: write %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
