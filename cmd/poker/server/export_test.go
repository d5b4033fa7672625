package server

import "time"

// SetStreamQuickWrite changes how long a stream writer's write may wait
// before the stream is handed to a goroutine of its own; it returns a func
// that restores it. Not for parallel tests.
func SetStreamQuickWrite(d time.Duration) (restore func()) {
	old := streamQuickWrite
	streamQuickWrite = d
	return func() { streamQuickWrite = old }
}

// StreamHandoffs returns how many streams the writers handed off.
func (s *Server) StreamHandoffs() int64 { return s.streams.handoffs.Load() }
