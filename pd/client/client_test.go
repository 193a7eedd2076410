package client

import (
	"errors"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewParsesEndpoints(t *testing.T) {
	c, err := New(" 10.0.0.1:2379, https://10.0.0.2:2379/ ,,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}
	if len(c.endpoints) != 2 || c.endpoints[0] != want[0] || c.endpoints[1] != want[1] {
		t.Fatalf("endpoints = %v, want %v", c.endpoints, want)
	}
	if _, err := New(" , "); !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("err = %v", err)
	}
}

func TestLeaderHint(t *testing.T) {
	withDetail := connect.NewError(connect.CodeUnavailable, errors.New("not leader; leader is http://a:1"))
	d, err := connect.NewErrorDetail(&pdv1.NotLeader{LeaderUrl: "http://b:2"})
	if err != nil {
		t.Fatal(err)
	}
	withDetail.AddDetail(d)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{withDetail, "http://b:2"},
		{connect.NewError(connect.CodeUnavailable, errors.New("not leader; leader is http://a:1")), "http://a:1"},
		{connect.NewError(connect.CodeUnavailable, errors.New("connection refused")), ""},
		{connect.NewError(connect.CodeNotFound, errors.New("leader is http://a:1")), ""},
		{errors.New("plain"), ""},
	} {
		if got := leaderHint(tc.err); got != tc.want {
			t.Errorf("leaderHint(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
