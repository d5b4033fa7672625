package sim

// WithPlantedOnLoadBug returns cfg with the differential bank's planted
// bug switched on: an account restored from its checkpoint does not rebuild
// its derived field. It exists for the tests only.
func WithPlantedOnLoadBug(cfg Config) Config {
	cfg.plantOnLoadBug = true
	return cfg
}
