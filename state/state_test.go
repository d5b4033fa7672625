package state_test

import (
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state"
	"github.com/reactorgo/reactor/state/statetest"
)

func TestMemStore(t *testing.T) {
	statetest.RunStoreTests(t, func(t *testing.T) reactor.StateStore { return state.NewMemStore() })
}
