package sim

// WithPlantedOnLoadBug returns cfg with the differential bank's planted
// bug switched on: an account restored from its checkpoint does not rebuild
// its derived field. It exists for the tests only.
func WithPlantedOnLoadBug(cfg Config) Config {
	cfg.plantOnLoadBug = true
	return cfg
}

// WithStrictSQLReplay returns cfg with RunSQL failing on the known bug of
// a journaled DB reactor (a failed batch applied by replay) instead of
// counting it.
func WithStrictSQLReplay(cfg Config) Config {
	cfg.strictSQLReplay = true
	return cfg
}
