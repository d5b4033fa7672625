package checkpoint_test

import (
	"testing"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/checkpoint/checkpointtest"
)

func TestMemStoreContract(t *testing.T) {
	checkpointtest.RunStoreTests(t, func(*testing.T) checkpoint.Store { return checkpoint.NewMemStore() })
}
