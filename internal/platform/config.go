package platform

import "errors"

// ConfigResult is what writing or removing a release's configuration for a
// service did (a Kubernetes ConfigMap).
type ConfigResult struct {
	Service string `json:"service"`
	// Name is the ConfigMap holding the release's configuration.
	Name string `json:"name"`
	Keys int    `json:"keys,omitempty"`
	// Created says the release wrote it (so its rollback removes it).
	Created bool `json:"created,omitempty"`
	// Previous lists the release ConfigMaps the pods used before: what a
	// rollback returns them to.
	Previous []string `json:"previous,omitempty"`
	// Removed says a rollback deleted it; InUse names the Deployments that
	// still refer to it, so it was kept.
	Removed bool     `json:"removed,omitempty"`
	InUse   []string `json:"inUse,omitempty"`
}

// ErrConfigConflict is wrapped by errors that say an object with the name
// of a release's configuration holds other data: retrying does not help.
var ErrConfigConflict = errors.New("configuration conflict")

// ErrTypeConfigConflict is the activity error type of ErrConfigConflict.
const ErrTypeConfigConflict = "ConfigConflict"
