package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
)

// getJSON GETs path from the first endpoint that answers and returns the
// body.
func (cn *conn) getJSON(ctx context.Context, path string) ([]byte, error) {
	return cn.doJSON(ctx, http.MethodGet, path, nil)
}

// doJSON sends a request with an optional JSON body to the first endpoint
// that answers (an unreachable endpoint or a 503 moves on to the next one)
// and returns the response body. A non-200 answer is an error carrying
// PD's message (a JSON string) and the HTTP status.
func (cn *conn) doJSON(ctx context.Context, method, path string, body any) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	var out []byte
	err := cn.each(ctx, func(ctx context.Context, url string) error {
		req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := cn.http.Do(req)
		if err != nil {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		if resp.StatusCode != http.StatusOK {
			msg := string(bytes.TrimSpace(b))
			var s string
			if json.Unmarshal(b, &s) == nil {
				msg = s
			}
			err := fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
			if resp.StatusCode == http.StatusServiceUnavailable {
				return connect.NewError(connect.CodeUnavailable, err)
			}
			return err
		}
		out = b
		return nil
	})
	return out, err
}
