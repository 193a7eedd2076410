package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/urfave/cli/v2"
)

func flaredbCommand() *cli.Command {
	return &cli.Command{
		Name:  "flaredb",
		Usage: "inspect FlareDB through the placement driver",
		Subcommands: []*cli.Command{
			{Name: "cluster-status", Usage: "one line per store: id, state, capacity, available (GET /pd/api/v1/stores)", Flags: clientFlags(), Action: clusterStatus},
		},
	}
}

// pdStores is the part of GET /pd/api/v1/stores that cluster-status prints.
type pdStores struct {
	Count  int `json:"count"`
	Stores []struct {
		Store struct {
			ID        uint64 `json:"id"`
			Address   string `json:"address"`
			StateName string `json:"state_name"`
		} `json:"store"`
		Status struct {
			Capacity  string `json:"capacity"`
			Available string `json:"available"`
		} `json:"status"`
	} `json:"stores"`
}

// getJSON GETs path from the first endpoint that answers and returns the
// body.
func (cn *conn) getJSON(ctx context.Context, path string) ([]byte, error) {
	var body []byte
	err := cn.each(ctx, func(ctx context.Context, url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
		if err != nil {
			return err
		}
		resp, err := cn.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
		}
		body = b
		return nil
	})
	return body, err
}

func clusterStatus(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	body, err := cn.getJSON(c.Context, "/pd/api/v1/stores?state=0&state=1&state=2")
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		_, err := w.Write(append(body, '\n'))
		return err
	}
	var st pdStores
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("cluster-status: decode /pd/api/v1/stores: %w", err)
	}
	for _, s := range st.Stores {
		fmt.Fprintf(w, "store_id=%d, state=%s, capacity=%s, available=%s, address=%s\n", s.Store.ID, s.Store.StateName, s.Status.Capacity, s.Status.Available, s.Store.Address)
	}
	return nil
}
