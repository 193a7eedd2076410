package etcdcompat_test

import (
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	etcdmvccpb "go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// TestRoundTripThroughEtcdTypes encodes fully populated etcd messages with
// etcd's own code, decodes them into ours, and back: nothing may be lost or
// land in unknown fields.
func TestRoundTripThroughEtcdTypes(t *testing.T) {
	header := &etcdpb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 3, RaftTerm: 4}
	kv := &etcdmvccpb.KeyValue{Key: []byte("k"), CreateRevision: 2, ModRevision: 3, Version: 4, Value: []byte("v"), Lease: 5}
	rangeReq := &etcdpb.RangeRequest{
		Key: []byte("a"), RangeEnd: []byte("b"), Limit: 1, Revision: 2,
		SortOrder: etcdpb.RangeRequest_DESCEND, SortTarget: etcdpb.RangeRequest_MOD,
		Serializable: true, KeysOnly: true, CountOnly: true,
		MinModRevision: 3, MaxModRevision: 4, MinCreateRevision: 5, MaxCreateRevision: 6,
	}
	putReq := &etcdpb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7, PrevKv: true, IgnoreValue: true, IgnoreLease: true}
	deleteReq := &etcdpb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), PrevKv: true}
	member := &etcdpb.Member{ID: 9, Name: "n1", PeerURLs: []string{"https://p:2380"}, ClientURLs: []string{"https://c:2379"}, IsLearner: true}

	for _, tc := range []struct {
		etcd gogoMessage
		ours proto.Message
	}{
		{&etcdpb.TxnRequest{
			Compare: []*etcdpb.Compare{
				{Result: etcdpb.Compare_NOT_EQUAL, Target: etcdpb.Compare_VALUE, Key: []byte("a"), RangeEnd: []byte("b"),
					TargetUnion: &etcdpb.Compare_Value{Value: []byte("x")}},
				{Result: etcdpb.Compare_LESS, Target: etcdpb.Compare_LEASE, TargetUnion: &etcdpb.Compare_Lease{Lease: 8}},
				{Result: etcdpb.Compare_GREATER, Target: etcdpb.Compare_MOD, TargetUnion: &etcdpb.Compare_ModRevision{ModRevision: 7}},
				{Target: etcdpb.Compare_CREATE, TargetUnion: &etcdpb.Compare_CreateRevision{CreateRevision: 6}},
				{TargetUnion: &etcdpb.Compare_Version{Version: 5}},
			},
			Success: []*etcdpb.RequestOp{
				{Request: &etcdpb.RequestOp_RequestRange{RequestRange: rangeReq}},
				{Request: &etcdpb.RequestOp_RequestPut{RequestPut: putReq}},
			},
			Failure: []*etcdpb.RequestOp{
				{Request: &etcdpb.RequestOp_RequestDeleteRange{RequestDeleteRange: deleteReq}},
				{Request: &etcdpb.RequestOp_RequestTxn{RequestTxn: &etcdpb.TxnRequest{
					Success: []*etcdpb.RequestOp{{Request: &etcdpb.RequestOp_RequestPut{RequestPut: putReq}}},
				}}},
			},
		}, &etcdserverpb.TxnRequest{}},
		{&etcdpb.TxnResponse{Header: header, Succeeded: true, Responses: []*etcdpb.ResponseOp{
			{Response: &etcdpb.ResponseOp_ResponseRange{ResponseRange: &etcdpb.RangeResponse{
				Header: header, Kvs: []*etcdmvccpb.KeyValue{kv, kv}, More: true, Count: 3}}},
			{Response: &etcdpb.ResponseOp_ResponsePut{ResponsePut: &etcdpb.PutResponse{Header: header, PrevKv: kv}}},
			{Response: &etcdpb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &etcdpb.DeleteRangeResponse{
				Header: header, Deleted: 2, PrevKvs: []*etcdmvccpb.KeyValue{kv}}}},
			{Response: &etcdpb.ResponseOp_ResponseTxn{ResponseTxn: &etcdpb.TxnResponse{Header: header}}},
		}}, &etcdserverpb.TxnResponse{}},
		{&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CreateRequest{CreateRequest: &etcdpb.WatchCreateRequest{
			Key: []byte("a"), RangeEnd: []byte("b"), StartRevision: 3, ProgressNotify: true,
			Filters: []etcdpb.WatchCreateRequest_FilterType{etcdpb.WatchCreateRequest_NODELETE, etcdpb.WatchCreateRequest_NOPUT},
			PrevKv:  true, WatchId: 4, Fragment: true,
		}}}, &etcdserverpb.WatchRequest{}},
		{&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CancelRequest{CancelRequest: &etcdpb.WatchCancelRequest{WatchId: 4}}},
			&etcdserverpb.WatchRequest{}},
		{&etcdpb.WatchResponse{
			Header: header, WatchId: 4, Created: true, Canceled: true, CompactRevision: 2, CancelReason: "r", Fragment: true,
			Events: []*etcdmvccpb.Event{{Type: etcdmvccpb.PUT, Kv: kv}, {Type: etcdmvccpb.DELETE, Kv: kv, PrevKv: kv}},
		}, &etcdserverpb.WatchResponse{}},
		{&etcdpb.LeaseTimeToLiveResponse{Header: header, ID: 1, TTL: 2, GrantedTTL: 3, Keys: [][]byte{[]byte("a"), []byte("b")}},
			&etcdserverpb.LeaseTimeToLiveResponse{}},
		{&etcdpb.LeaseLeasesResponse{Header: header, Leases: []*etcdpb.LeaseStatus{{ID: 1}, {ID: 2}}},
			&etcdserverpb.LeaseLeasesResponse{}},
		{&etcdpb.MemberAddResponse{Header: header, Member: member, Members: []*etcdpb.Member{member, member}},
			&etcdserverpb.MemberAddResponse{}},
		{&etcdpb.AlarmRequest{Action: etcdpb.AlarmRequest_DEACTIVATE, MemberID: 3, Alarm: etcdpb.AlarmType_CORRUPT},
			&etcdserverpb.AlarmRequest{}},
		{&etcdpb.StatusResponse{
			Header: header, Version: "3.6.8", DbSize: 1, Leader: 2, RaftIndex: 3, RaftTerm: 4, RaftAppliedIndex: 5,
			Errors: []string{"e"}, DbSizeInUse: 6, IsLearner: true, StorageVersion: "3.6", DbSizeQuota: 7,
			DowngradeInfo: &etcdpb.DowngradeInfo{Enabled: true, TargetVersion: "3.5"},
		}, &etcdserverpb.StatusResponse{}},
		{&etcdpb.SnapshotResponse{Header: header, RemainingBytes: 1, Blob: []byte("b"), Version: "3.6.0"},
			&etcdserverpb.SnapshotResponse{}},
		{&etcdpb.HashKVResponse{Header: header, Hash: 1, CompactRevision: 2, HashRevision: 3},
			&etcdserverpb.HashKVResponse{}},
	} {
		name := string(tc.ours.ProtoReflect().Descriptor().FullName())
		etcdBytes, err := tc.etcd.Marshal()
		if err != nil {
			t.Fatalf("%s: etcd marshal: %v", name, err)
		}
		if err := proto.Unmarshal(etcdBytes, tc.ours); err != nil {
			t.Fatalf("%s: our unmarshal: %v", name, err)
		}
		if path := unknownFieldsAt(tc.ours.ProtoReflect(), name); path != "" {
			t.Errorf("%s: etcd's bytes left unknown fields in our %s", name, path)
		}
		ourBytes, err := proto.Marshal(tc.ours)
		if err != nil {
			t.Fatalf("%s: our marshal: %v", name, err)
		}
		back := reflect.New(reflect.TypeOf(tc.etcd).Elem()).Interface().(gogoMessage)
		if err := back.Unmarshal(ourBytes); err != nil {
			t.Fatalf("%s: etcd unmarshal: %v", name, err)
		}
		backBytes, err := back.Marshal()
		if err != nil {
			t.Fatalf("%s: etcd marshal: %v", name, err)
		}
		if !bytes.Equal(etcdBytes, backBytes) {
			t.Errorf("%s changed on the round trip through ours:\n before: %x\n after:  %x", name, etcdBytes, backBytes)
		}
	}
}

// unknownFieldsAt returns the path of the first message under m that holds
// unknown fields, or "".
func unknownFieldsAt(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		p := path + "." + string(fd.Name())
		if fd.IsList() {
			for i := range v.List().Len() {
				if found = unknownFieldsAt(v.List().Get(i).Message(), p); found != "" {
					return false
				}
			}
			return true
		}
		found = unknownFieldsAt(v.Message(), p)
		return found == ""
	})
	return found
}
