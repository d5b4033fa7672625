package reactor

// CheckpointRound runs one periodic checkpoint round now (tests drive the
// rounds themselves instead of waiting for Config.CheckpointInterval).
func CheckpointRound(rt *Runtime) { rt.checkpointRound() }
