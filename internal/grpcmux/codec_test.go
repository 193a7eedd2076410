package grpcmux_test

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
	"github.com/centra-cloud/centra/internal/grpcmux"
)

// TestCodecRoundTrip: messages with generated code (small ones in their
// own buffer, large ones in grpc-go's pool) and without (grpc-go's codec)
// encode to what protobuf-go decodes, and decode what protobuf-go encodes,
// also when the bytes arrive split over several buffers.
func TestCodecRoundTrip(t *testing.T) {
	big := &etcdserverpb.RangeResponse{Header: &etcdserverpb.ResponseHeader{Revision: 3}, Count: 2}
	for i := range 2 {
		big.Kvs = append(big.Kvs, &mvccpb.KeyValue{Key: []byte{'k', byte(i)}, Value: bytes.Repeat([]byte{'v'}, 4096), ModRevision: 3})
	}
	cases := []struct {
		msg, empty proto.Message
	}{
		{&etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 5, PrevKv: true}, &etcdserverpb.PutRequest{}},
		{big, &etcdserverpb.RangeResponse{}},
		{wrapperspb.String("no generated code"), &wrapperspb.StringValue{}},
	}
	var c grpcmux.Codec
	for _, tc := range cases {
		data, err := c.Marshal(tc.msg)
		if err != nil {
			t.Fatalf("marshal %T: %v", tc.msg, err)
		}
		enc := data.Materialize()
		data.Free()
		got := proto.Clone(tc.empty)
		if err := proto.Unmarshal(enc, got); err != nil || !proto.Equal(got, tc.msg) {
			t.Fatalf("protobuf-go decodes the codec's %T as %v (%v)", tc.msg, got, err)
		}
		want, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		half := len(want) / 2
		split := mem.BufferSlice{mem.SliceBuffer(want[:half]), mem.SliceBuffer(want[half:])}
		got = proto.Clone(tc.empty)
		if err := c.Unmarshal(split, got); err != nil || !proto.Equal(got, tc.msg) {
			t.Fatalf("the codec decodes protobuf-go's %T as %v (%v)", tc.msg, got, err)
		}
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Fatal("marshalled a string")
	}
}
