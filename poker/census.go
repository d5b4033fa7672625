package poker

import (
	"context"

	"github.com/reactorgo/reactor"
)

// CensusAddress is where RegisterCensus registers the census.
const CensusAddress = "/census"

// census counts the live rooms of a deployment whose rooms are spread over
// runtimes that share no memory — the partitions of a cluster — in one
// journaled service (a partition of one): it admits a new room while fewer
// than the limit are live, and forgets a room when the room closes
// (Options.Census). Admit and leave are idempotent by address, so a call
// retried after a timeout counts once.
type census struct {
	Live map[string]bool `json:"live"`
}

type admitReq struct {
	Addr  string `json:"addr"`
	Limit int    `json:"limit"`
}

func (s *census) admit(_ *reactor.Ctx, r admitReq) (bool, error) {
	switch {
	case s.Live[r.Addr]:
		return true, nil
	case len(s.Live) >= r.Limit:
		return false, nil
	case s.Live == nil:
		s.Live = map[string]bool{}
	}
	s.Live[r.Addr] = true
	return true, nil
}

func (s *census) leave(_ *reactor.Ctx, addr string) (struct{}, error) {
	delete(s.Live, addr)
	return struct{}{}, nil
}

var (
	censusAdmit = reactor.Method("poker.census.admit", (*census).admit)
	censusLeave = reactor.Method("poker.census.leave", (*census).leave)
)

// RegisterCensus registers the census at CensusAddress on rt, journaled
// (before rt.Start). In a cluster, register it on every node's partition
// runtimes and make CensusAddress a service of the cluster: one node
// serves it at a time.
func RegisterCensus(rt *reactor.Runtime) error {
	_, err := reactor.Register(rt, CensusAddress, &census{}, reactor.Journaled())
	return err
}

// CensusOf returns the RoomCensus kept by the census service that rt
// reaches at CensusAddress (a cluster node's client runtime): the
// Shared.Census of the rooms' front end, with Options.Census set on the
// runtimes the rooms run on.
func CensusOf(rt *reactor.Runtime) RoomCensus { return censusClient{rt.Ref(CensusAddress)} }

type censusClient struct{ ref reactor.Ref }

func (cc censusClient) Admit(ctx context.Context, addr string, limit int) (bool, error) {
	return censusAdmit.Call(ctx, cc.ref, admitReq{Addr: addr, Limit: limit})
}

func (cc censusClient) Leave(ctx context.Context, addr string) error {
	_, err := censusLeave.Call(ctx, cc.ref, addr)
	return err
}
