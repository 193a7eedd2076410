package schedule

import (
	"fmt"
	"strings"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// Kind flags what an operator does; the schedule limits count operators
// per flag.
type Kind uint8

// Operator kinds.
const (
	KindAdmin Kind = 1 << iota
	KindLeader
	KindRegion
	KindReplica
)

var kindNames = []struct {
	k    Kind
	name string
}{{KindAdmin, "admin"}, {KindLeader, "leader"}, {KindRegion, "region"}, {KindReplica, "replica"}}

// String is TiKV's comma-separated form, e.g. "replica,region".
func (k Kind) String() string {
	var names []string
	for _, n := range kindNames {
		if k&n.k != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseKind reads one kind name (the ?kind= filter).
func ParseKind(s string) (Kind, bool) {
	for _, n := range kindNames {
		if n.name == s {
			return n.k, true
		}
	}
	return 0, false
}

// Priority orders operators of one region: a higher one replaces a lower.
type Priority int

// Priorities: balance < replica repair < admin.
const (
	PriorityNormal Priority = iota
	PriorityHigh
	PriorityAdmin
)

// Status is an operator's state.
type Status string

// Operator statuses (TiKV's).
const (
	StatusCreated  Status = "CREATED"
	StatusStarted  Status = "STARTED"
	StatusSuccess  Status = "SUCCESS"
	StatusTimeout  Status = "TIMEOUT"
	StatusCanceled Status = "CANCELED"
	StatusReplaced Status = "REPLACED"
)

// Operator moves one region from the state it was built for through
// steps. Its fields are read-only once the controller has it; the
// controller's lock guards the progress fields.
type Operator struct {
	ID       uint64 // set by the controller
	Desc     string // what made it: "balance-region", "replace-down-replica", "admin-transfer-peer"...
	Brief    string
	RegionID uint64
	Epoch    *metav1.RegionEpoch // the epoch it was built for
	Kind     Kind
	Priority Priority
	Steps    []Step
	Size     uint64 // region size, MiB
	// leaderStore is the region leader's store at creation (the snapshot
	// sender of an AddLearner).
	leaderStore uint64

	createAt, startAt, stepStart, finishAt time.Time
	current                                int
	status                                 Status
	reason                                 string
}

// NewOperator returns an operator for region r.
func NewOperator(desc, brief string, r *Region, kind Kind, pri Priority, steps ...Step) *Operator {
	return &Operator{
		Desc: desc, Brief: brief, RegionID: r.ID(), Epoch: &metav1.RegionEpoch{ConfVer: r.Epoch().GetConfVer(), Version: r.Epoch().GetVersion()},
		Kind: kind, Priority: pri, Steps: steps, Size: r.Size, leaderStore: r.Leader.GetStoreId(), status: StatusCreated,
	}
}

// confChangesSeen counts the membership changes of the operator's steps
// that r shows: those of the finished steps, and the current one's when its
// change is visible but not finished (TiKV's ConfVerChanged). A conf_ver
// above the operator's epoch plus these was changed by someone else, e.g.
// an earlier operator's learner on the very store this one adds to: its
// AddLearner would be refused for ever.
func (o *Operator) confChangesSeen(r *Region) uint64 {
	n := uint64(0)
	for i, s := range o.Steps[:min(o.current+1, len(o.Steps))] {
		if s.confChange() && (i < o.current || s.applied(r)) {
			n++
		}
	}
	return n
}

// timeouts lists each step's timeout.
func (o *Operator) timeouts() []time.Duration {
	out := make([]time.Duration, len(o.Steps))
	for i, s := range o.Steps {
		out[i] = s.timeout(o.Size)
	}
	return out
}

const timeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// String is TiKV PD's operator format.
func (o *Operator) String() string {
	steps := make([]string, len(o.Steps))
	for i, st := range o.Steps {
		steps[i] = fmt.Sprintf("%d:{%s}", i, st)
	}
	touts := o.timeouts()
	ts := make([]string, len(touts))
	for i, t := range touts {
		ts[i] = fmt.Sprintf("%d:{%s}", i, t)
	}
	s := fmt.Sprintf("%s {%s} (kind:%s, region:%d(%d, %d), createAt:%s, startAt:%s, currentStep:%d, size:%d, steps:[%s], timeout:[%s])",
		o.Desc, o.Brief, o.Kind, o.RegionID, o.Epoch.GetVersion(), o.Epoch.GetConfVer(),
		o.createAt.Format(timeLayout), o.startAt.Format(timeLayout), o.current, o.Size,
		strings.Join(steps, ", "), strings.Join(ts, ", "))
	switch o.status {
	case StatusSuccess:
		s += " finished"
	case StatusTimeout:
		s += " timeout"
	}
	return s
}

// View is an operator's state, copied under the controller's lock (the
// ?object form of GET /operators).
type View struct {
	ID          uint64              `json:"id"`
	Desc        string              `json:"desc"`
	Brief       string              `json:"brief"`
	RegionID    uint64              `json:"region_id"`
	RegionEpoch *metav1.RegionEpoch `json:"region_epoch"`
	Kind        string              `json:"kind"`
	KindFlags   Kind                `json:"-"`
	Timeout     string              `json:"timeout"`
	Status      Status              `json:"status"`
	Steps       []string            `json:"steps"`
	CurrentStep int                 `json:"current_step"`
	CreateAt    time.Time           `json:"create_at"`
	FinishAt    *time.Time          `json:"finish_at,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	String      string              `json:"-"`
}

func (o *Operator) view() View {
	var total time.Duration
	for _, t := range o.timeouts() {
		total += t
	}
	v := View{ID: o.ID, Desc: o.Desc, Brief: o.Brief, RegionID: o.RegionID, RegionEpoch: o.Epoch, Kind: o.Kind.String(), KindFlags: o.Kind,
		Timeout: total.String(), Status: o.status, CurrentStep: o.current, CreateAt: o.createAt, Reason: o.reason, String: o.String()}
	for _, s := range o.Steps {
		v.Steps = append(v.Steps, s.String())
	}
	if !o.finishAt.IsZero() {
		t := o.finishAt
		v.FinishAt = &t
	}
	return v
}
