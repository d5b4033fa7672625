module github.com/reactorgo/reactor

go 1.26
