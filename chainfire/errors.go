package chainfire

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Errors returned by the Chainfire services. The messages are etcd's own
// ("etcdserver: ..."), because etcd clients (clientv3, etcdctl) recognise
// errors by their gRPC code and message.
var (
	// ErrEmptyKey: a request has no key.
	ErrEmptyKey = errors.New("etcdserver: key is not provided")
	// ErrKeyNotFound: ignore_value or ignore_lease on a key that does not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrValueProvided: ignore_value together with a value.
	ErrValueProvided = errors.New("etcdserver: value is provided")
	// ErrLeaseProvided: ignore_lease together with a lease.
	ErrLeaseProvided = errors.New("etcdserver: lease is provided")
	// ErrTooManyOps: a transaction has more operations than allowed.
	ErrTooManyOps = errors.New("etcdserver: too many operations in txn request")
	// ErrDuplicateKey: a transaction writes one key twice.
	ErrDuplicateKey = errors.New("etcdserver: duplicate key given in txn request")
	// ErrCompacted: the revision asked for was compacted.
	ErrCompacted = errors.New("etcdserver: mvcc: required revision has been compacted")
	// ErrFutureRev: the revision asked for does not exist yet.
	ErrFutureRev = errors.New("etcdserver: mvcc: required revision is a future revision")
	// ErrLeaseNotFound: no such lease.
	ErrLeaseNotFound = errors.New("etcdserver: requested lease not found")
	// ErrLeaseExist: a lease with that ID exists.
	ErrLeaseExist = errors.New("etcdserver: lease already exists")
	// ErrLeaseTTLTooLarge: the TTL exceeds MaxLeaseTTL.
	ErrLeaseTTLTooLarge = errors.New("etcdserver: too large lease TTL")
	// ErrNoLeader: the metadata shard has no leader (no quorum).
	ErrNoLeader = errors.New("etcdserver: no leader")
	// ErrTimeout: the request timed out; a write may or may not have been applied.
	ErrTimeout = errors.New("etcdserver: request timed out")
	// ErrRequestTooLarge: the request exceeds the size limit.
	ErrRequestTooLarge = errors.New("etcdserver: request is too large")
	// ErrNotCapable: the operation is not supported by Chainfire.
	ErrNotCapable = errors.New("etcdserver: not capable")
	// ErrWrongDowngradeVersionFormat: Downgrade with a version that is not
	// MAJOR.MINOR[.PATCH].
	ErrWrongDowngradeVersionFormat = errors.New("etcdserver: wrong downgrade target version format")
	// ErrInvalidDowngradeTarget: Downgrade VALIDATE/ENABLE; centra has no
	// older cluster version to go back to (see Maintenance.Downgrade).
	ErrInvalidDowngradeTarget = errors.New("etcdserver: invalid downgrade target version")
	// ErrNoInflightDowngrade: Downgrade CANCEL; there is never a downgrade
	// job to cancel.
	ErrNoInflightDowngrade = errors.New("etcdserver: no inflight downgrade job")
	// ErrStopped: the server is shutting down.
	ErrStopped = errors.New("etcdserver: server stopped")
	// ErrBadCommand: a raft log entry could not be decoded (a newer or corrupt encoding).
	ErrBadCommand = errors.New("chainfire: undecodable raft command")
	// ErrMemberExists: member-add of a node ID that is already a member.
	ErrMemberExists = errors.New("etcdserver: member ID already exist")
	// ErrPeerURLExists: member-add with a peer URL another member uses.
	ErrPeerURLExists = errors.New("etcdserver: Peer URLs already exists")
	// ErrMemberNotFound: no member with that node ID.
	ErrMemberNotFound = errors.New("etcdserver: member not found")
	// ErrMemberNotLearner: promote of a member that already votes.
	ErrMemberNotLearner = errors.New("etcdserver: can only promote a learner member")
	// ErrLearnerNotReady: promote of a learner that has not caught up.
	ErrLearnerNotReady = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	// ErrUnhealthy: the change would leave the cluster without a quorum.
	ErrUnhealthy = errors.New("etcdserver: unhealthy cluster")
	// errAlreadyMember: a join handshake sent to a running member.
	errAlreadyMember = errors.New("chainfire: this node is already a member of a cluster")
	// ErrNoSpace: a NOSPACE alarm is active or the space quota is exceeded.
	ErrNoSpace = errors.New("etcdserver: mvcc: database space exceeded")
	// ErrCorrupt: a CORRUPT alarm is active (replicas' data diverged).
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
	// ErrNotLeader: a request only the leader serves (MoveLeader) reached a follower.
	ErrNotLeader = errors.New("etcdserver: not leader")
	// ErrBadLeaderTransferee: MoveLeader to a member that is unknown or a learner.
	ErrBadLeaderTransferee = errors.New("etcdserver: bad leader transferee")
	// ErrTimeoutLeaderTransfer: the leadership did not move in time.
	ErrTimeoutLeaderTransfer = errors.New("etcdserver: request timed out, leader transfer took too long")
	// Auth errors (etcd's rpctypes).
	ErrRootUserNotExist     = errors.New("etcdserver: root user does not exist")
	ErrRootRoleNotExist     = errors.New("etcdserver: root user does not have root role")
	ErrUserAlreadyExist     = errors.New("etcdserver: user name already exists")
	ErrUserEmpty            = errors.New("etcdserver: user name is empty")
	ErrUserNotFound         = errors.New("etcdserver: user name not found")
	ErrRoleAlreadyExist     = errors.New("etcdserver: role name already exists")
	ErrRoleNotFound         = errors.New("etcdserver: role name not found")
	ErrRoleEmpty            = errors.New("etcdserver: role name is empty")
	ErrAuthFailed           = errors.New("etcdserver: authentication failed, invalid user ID or password")
	ErrPermissionNotGiven   = errors.New("etcdserver: permission not given")
	ErrPermissionDenied     = errors.New("etcdserver: permission denied")
	ErrRoleNotGranted       = errors.New("etcdserver: role is not granted to the user")
	ErrPermissionNotGranted = errors.New("etcdserver: permission is not granted to the role")
	ErrAuthNotEnabled       = errors.New("etcdserver: authentication is not enabled")
	ErrInvalidAuthToken     = errors.New("etcdserver: invalid auth token")
	ErrInvalidAuthMgmt      = errors.New("etcdserver: invalid auth management")
	ErrAuthOldRevision      = errors.New("etcdserver: revision of auth store is old")
	// ErrNoPasswordUser: a password for a user created without one (etcd's
	// auth error, which etcd returns as an unknown error).
	ErrNoPasswordUser = errors.New("auth: authentication failed, password was given for no password user")
	// ErrConfigChangeInFlight: another membership change is in progress.
	ErrConfigChangeInFlight = errors.New("chainfire: another membership change is in progress; retry when it finished")
)

// errorCodes maps every error a Chainfire RPC can return to its wire code,
// following etcd's rpctypes table so clients retry (Unavailable) or give up
// exactly as they do against etcd.
var errorCodes = map[error]connect.Code{
	ErrEmptyKey:              connect.CodeInvalidArgument,
	ErrKeyNotFound:           connect.CodeInvalidArgument,
	ErrValueProvided:         connect.CodeInvalidArgument,
	ErrLeaseProvided:         connect.CodeInvalidArgument,
	ErrTooManyOps:            connect.CodeInvalidArgument,
	ErrDuplicateKey:          connect.CodeInvalidArgument,
	ErrCompacted:             connect.CodeOutOfRange,
	ErrFutureRev:             connect.CodeOutOfRange,
	ErrLeaseNotFound:         connect.CodeNotFound,
	ErrLeaseExist:            connect.CodeFailedPrecondition,
	ErrLeaseTTLTooLarge:      connect.CodeOutOfRange,
	ErrNoLeader:              connect.CodeUnavailable,
	ErrTimeout:               connect.CodeUnavailable,
	ErrRequestTooLarge:       connect.CodeInvalidArgument,
	ErrNotCapable:            connect.CodeUnimplemented,
	ErrStopped:               connect.CodeUnavailable,
	ErrBadCommand:            connect.CodeInternal,
	ErrMemberExists:          connect.CodeFailedPrecondition,
	ErrPeerURLExists:         connect.CodeFailedPrecondition,
	ErrMemberNotFound:        connect.CodeNotFound,
	ErrMemberNotLearner:      connect.CodeFailedPrecondition,
	ErrLearnerNotReady:       connect.CodeFailedPrecondition,
	ErrUnhealthy:             connect.CodeUnavailable,
	ErrConfigChangeInFlight:  connect.CodeUnavailable,
	ErrNoSpace:               connect.CodeResourceExhausted,
	ErrCorrupt:               connect.CodeDataLoss,
	ErrNotLeader:             connect.CodeFailedPrecondition,
	ErrBadLeaderTransferee:   connect.CodeFailedPrecondition,
	ErrTimeoutLeaderTransfer: connect.CodeUnavailable,
	ErrRootUserNotExist:      connect.CodeFailedPrecondition,
	ErrRootRoleNotExist:      connect.CodeFailedPrecondition,
	ErrUserAlreadyExist:      connect.CodeFailedPrecondition,
	ErrUserEmpty:             connect.CodeInvalidArgument,
	ErrUserNotFound:          connect.CodeFailedPrecondition,
	ErrRoleAlreadyExist:      connect.CodeFailedPrecondition,
	ErrRoleNotFound:          connect.CodeFailedPrecondition,
	ErrRoleEmpty:             connect.CodeInvalidArgument,
	ErrAuthFailed:            connect.CodeInvalidArgument,
	ErrPermissionNotGiven:    connect.CodeInvalidArgument,
	ErrPermissionDenied:      connect.CodePermissionDenied,
	ErrRoleNotGranted:        connect.CodeFailedPrecondition,
	ErrPermissionNotGranted:  connect.CodeFailedPrecondition,
	ErrAuthNotEnabled:        connect.CodeFailedPrecondition,
	ErrInvalidAuthToken:      connect.CodeUnauthenticated,
	ErrInvalidAuthMgmt:       connect.CodeInvalidArgument,
	ErrAuthOldRevision:       connect.CodeInvalidArgument,
	ErrNoPasswordUser:        connect.CodeUnknown,

	// Downgrade (maintenance.go): etcd's codes.
	ErrWrongDowngradeVersionFormat: connect.CodeInvalidArgument,
	ErrInvalidDowngradeTarget:      connect.CodeInvalidArgument,
	ErrNoInflightDowngrade:         connect.CodeFailedPrecondition,
}

// internalErrors translates errors of lower layers to the service errors.
var internalErrors = []struct{ from, to error }{
	{mvcc.ErrCompacted, ErrCompacted},
	{mvcc.ErrFutureRev, ErrFutureRev},
	{mvcc.ErrLeaseNotFound, ErrLeaseNotFound},
	{mvcc.ErrLeaseExists, ErrLeaseExist},
	{lease.ErrNotFound, ErrLeaseNotFound},
	{raftnode.ErrNoLeader, ErrNoLeader},
	{raftnode.ErrTimeout, ErrTimeout},
	{raftnode.ErrClosed, ErrStopped},
	{raftnode.ErrRejected, ErrConfigChangeInFlight},
}

// toConnectError converts err to a connect error with etcd's code and
// message. Context errors keep their meaning; unknown errors are Internal
// with their full text, so the operator sees the cause.
func toConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	err = translate(err)
	for sentinel, code := range errorCodes {
		if errors.Is(err, sentinel) {
			// etcd clients match the message: it must start with etcd's
			// text. Context added after it (which node, which numbers) is
			// kept; wrapping by lower layers in front of it is not.
			if !strings.HasPrefix(err.Error(), sentinel.Error()) {
				err = sentinel
			}
			return connect.NewError(code, err)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// translate maps an error of a lower layer to the service error it means, or
// returns err unchanged.
func translate(err error) error {
	for _, m := range internalErrors {
		if errors.Is(err, m.from) {
			return m.to
		}
	}
	return err
}
