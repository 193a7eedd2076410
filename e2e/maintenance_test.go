//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestEtcdctlMaintenance drives etcd's own etcdctl 3.4 (Debian's
// etcd-client) against a 3-node cluster: `endpoint hashkv --cluster` equal
// on every member (also after a compaction), `defrag --cluster`, and
// `move-leader` to a follower (refused for an unknown member).
func TestEtcdctlMaintenance(t *testing.T) {
	framework.SystemTool(t, "etcdctl")
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	eps := strings.Join(c.Endpoints(), ",")
	cli := c.Client(t)
	var last int64
	for i := range 50 {
		r, err := cli.Put(ctx, fmt.Sprintf("m/%02d", i%10), strings.Repeat("v", i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	hashkv := func() error {
		r := framework.RunSystemEtcdctl(t, "--endpoints", c.Node(0).Endpoint(), "endpoint", "hashkv", "--cluster", "-w", "json")
		if r.Err != nil {
			return fmt.Errorf("endpoint hashkv --cluster: %s", r)
		}
		var out []struct {
			Endpoint string
			HashKV   struct {
				Header struct {
					Revision int64 `json:"revision"`
				} `json:"header"`
				Hash            uint32 `json:"hash"`
				CompactRevision int64  `json:"compact_revision"`
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			return fmt.Errorf("endpoint hashkv output %q: %v", r.Stdout, err)
		}
		if len(out) != 3 {
			return fmt.Errorf("endpoint hashkv --cluster answered for %d members, want 3: %s", len(out), r.Stdout)
		}
		for _, o := range out[1:] {
			if o.HashKV.Hash != out[0].HashKV.Hash || o.HashKV.Header.Revision != out[0].HashKV.Header.Revision || o.HashKV.CompactRevision != out[0].HashKV.CompactRevision {
				return fmt.Errorf("members disagree: %s", r.Stdout)
			}
		}
		if out[0].HashKV.Hash == 0 {
			return fmt.Errorf("zero hash: %s", r.Stdout)
		}
		return nil
	}
	framework.Eventually(t, hashkv, 20*time.Second)
	if _, err := cli.Compact(ctx, last-20); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, hashkv, 20*time.Second)

	r := framework.RunSystemEtcdctl(t, "--endpoints", c.Node(0).Endpoint(), "defrag", "--cluster")
	if r.Err != nil || strings.Count(r.Stdout, "Finished defragmenting etcd member") != 3 {
		t.Fatalf("defrag --cluster: %s", r)
	}
	framework.Eventually(t, hashkv, 20*time.Second)
	if g, err := cli.Get(ctx, "m/", clientv3.WithPrefix()); err != nil || g.Count != 10 {
		t.Fatalf("keys after defrag: %v %v", g, err)
	}

	li := c.Leader(t)
	target := c.Node(c.Followers(li)[0])
	hexID := strconv.FormatUint(target.ID, 16)
	r = framework.RunSystemEtcdctl(t, "--endpoints", eps, "move-leader", hexID)
	if r.Err != nil || !strings.Contains(r.Stdout, "Leadership transferred") {
		t.Fatalf("move-leader %s: %s", hexID, r)
	}
	if now := c.Leader(t); now != target.Index {
		t.Fatalf("leader is %s after move-leader to %s", c.Node(now), target)
	}
	if r = framework.RunSystemEtcdctl(t, "--endpoints", eps, "move-leader", "63"); r.Err == nil || !strings.Contains(r.Stderr, "bad leader transferee") {
		t.Fatalf("move-leader to an unknown member: %s", r)
	}
	if _, err := cli.Put(ctx, "m/after", "ok"); err != nil {
		t.Fatalf("put after move-leader: %v", err)
	}
}
