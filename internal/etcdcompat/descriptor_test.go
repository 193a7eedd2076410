package etcdcompat_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	etcdauthpb "go.etcd.io/etcd/api/v3/authpb"
	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	etcdmvccpb "go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/centra-cloud/centra/gen/authpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
	_ "github.com/centra-cloud/centra/internal/etcdcompat"
)

// gogoMessage is what etcd's gogo-generated messages implement.
type gogoMessage interface {
	Descriptor() ([]byte, []int)
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// TestDescriptorsMatchEtcd checks that every service, message and enum of
// ours exists in etcd's public API with the same wire shape: field names,
// numbers, types, labels, packing and oneof membership; enum values; and
// RPC signatures.
func TestDescriptorsMatchEtcd(t *testing.T) {
	for _, tc := range []struct {
		ours protoreflect.FileDescriptor
		etcd gogoMessage // any message of etcd's corresponding file
	}{
		{etcdserverpb.File_etcdserverpb_rpc_proto, &etcdpb.RangeRequest{}},
		{mvccpb.File_mvccpb_kv_proto, &etcdmvccpb.KeyValue{}},
		{authpb.File_authpb_auth_proto, &etcdauthpb.User{}},
	} {
		t.Run(tc.ours.Path(), func(t *testing.T) {
			ours := protodesc.ToFileDescriptorProto(tc.ours)
			etcd := etcdFileDescriptor(t, tc.etcd)
			if ours.GetPackage() != etcd.GetPackage() || ours.GetSyntax() != etcd.GetSyntax() {
				t.Fatalf("package/syntax %s/%s, etcd has %s/%s",
					ours.GetPackage(), ours.GetSyntax(), etcd.GetPackage(), etcd.GetSyntax())
			}
			compareDecls(t, "message", messageShapes(ours), messageShapes(etcd))
			compareDecls(t, "enum", enumShapes(ours), enumShapes(etcd))
			oursSvcs, etcdSvcs := serviceShapes(ours), serviceShapes(etcd)
			compareDecls(t, "service", oursSvcs, etcdSvcs)
			for name := range etcdSvcs {
				if _, ok := oursSvcs[name]; !ok {
					t.Errorf("etcd's service %s is missing", name)
				}
			}
		})
	}
}

// etcdFileDescriptor decodes the gzipped FileDescriptorProto embedded in
// etcd's generated code.
func etcdFileDescriptor(t *testing.T, m gogoMessage) *descriptorpb.FileDescriptorProto {
	t.Helper()
	gz, _ := m.Descriptor()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	fd := &descriptorpb.FileDescriptorProto{}
	if err := proto.Unmarshal(raw, fd); err != nil {
		t.Fatal(err)
	}
	return fd
}

// compareDecls requires each of our declarations to exist in etcd with the
// same shape. etcd may have more (internal lease checkpoints).
func compareDecls(t *testing.T, kind string, ours, etcd map[string][]string) {
	t.Helper()
	for name, shape := range ours {
		etcdShape, ok := etcd[name]
		if !ok {
			t.Errorf("%s %s is not in etcd's API", kind, name)
			continue
		}
		if onlyOurs, onlyEtcd := minus(shape, etcdShape), minus(etcdShape, shape); len(onlyOurs)+len(onlyEtcd) > 0 {
			t.Errorf("%s %s differs from etcd's:\n only ours: %q\n only etcd's: %q", kind, name, onlyOurs, onlyEtcd)
		}
	}
}

// minus returns the elements of a that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// messageShapes maps each message's full name, nested ones included, to one
// sorted line per field describing its wire shape.
func messageShapes(fd *descriptorpb.FileDescriptorProto) map[string][]string {
	shapes := map[string][]string{}
	var walk func(prefix string, msgs []*descriptorpb.DescriptorProto)
	walk = func(prefix string, msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			name := prefix + "." + m.GetName()
			var fields []string
			for _, f := range m.GetField() {
				oneof := ""
				if f.OneofIndex != nil {
					oneof = m.GetOneofDecl()[f.GetOneofIndex()].GetName()
				}
				fields = append(fields, fmt.Sprintf("%d %s %v %v %s oneof=%q packed=%v proto3_optional=%v",
					f.GetNumber(), f.GetName(), f.GetLabel(), f.GetType(), f.GetTypeName(),
					oneof, packed(fd, f), f.GetProto3Optional()))
			}
			slices.Sort(fields)
			shapes[name] = fields
			walk(name, m.GetNestedType())
		}
	}
	walk("."+fd.GetPackage(), fd.GetMessageType())
	return shapes
}

// packed reports whether a field is encoded packed: proto3 packs repeated
// scalars unless told otherwise.
func packed(fd *descriptorpb.FileDescriptorProto, f *descriptorpb.FieldDescriptorProto) bool {
	if f.GetLabel() != descriptorpb.FieldDescriptorProto_LABEL_REPEATED {
		return false
	}
	switch f.GetType() {
	case descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_BYTES,
		descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, descriptorpb.FieldDescriptorProto_TYPE_GROUP:
		return false
	}
	if f.GetOptions() != nil && f.GetOptions().Packed != nil {
		return f.GetOptions().GetPacked()
	}
	return fd.GetSyntax() == "proto3"
}

// enumShapes maps each enum's full name, nested ones included, to its
// sorted "number name" values.
func enumShapes(fd *descriptorpb.FileDescriptorProto) map[string][]string {
	shapes := map[string][]string{}
	add := func(prefix string, enums []*descriptorpb.EnumDescriptorProto) {
		for _, e := range enums {
			var values []string
			for _, v := range e.GetValue() {
				values = append(values, fmt.Sprintf("%d %s", v.GetNumber(), v.GetName()))
			}
			slices.Sort(values)
			shapes[prefix+"."+e.GetName()] = values
		}
	}
	var walk func(prefix string, msgs []*descriptorpb.DescriptorProto)
	walk = func(prefix string, msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			add(prefix+"."+m.GetName(), m.GetEnumType())
			walk(prefix+"."+m.GetName(), m.GetNestedType())
		}
	}
	add("."+fd.GetPackage(), fd.GetEnumType())
	walk("."+fd.GetPackage(), fd.GetMessageType())
	return shapes
}

// serviceShapes maps each service's full name to its sorted method
// signatures.
func serviceShapes(fd *descriptorpb.FileDescriptorProto) map[string][]string {
	shapes := map[string][]string{}
	for _, s := range fd.GetService() {
		var methods []string
		for _, m := range s.GetMethod() {
			methods = append(methods, fmt.Sprintf("%s(%s stream=%v) %s stream=%v",
				m.GetName(), m.GetInputType(), m.GetClientStreaming(), m.GetOutputType(), m.GetServerStreaming()))
		}
		slices.Sort(methods)
		shapes["."+fd.GetPackage()+"."+s.GetName()] = methods
	}
	return shapes
}
