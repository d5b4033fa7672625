package poker

// SameName exposes sameName to the tests.
var SameName = sameName
