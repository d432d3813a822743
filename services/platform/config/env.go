// Package config loads settings the two ways Kubernetes hands them to a pod:
// environment variables (a ConfigMap through envFrom, a Secret through
// secretKeyRef) read once at start, and mounted directories (a ConfigMap or
// Secret volume) watched for changes and applied without a restart.
package config

import (
	"errors"
	"fmt"

	"github.com/kelseyhightower/envconfig"
)

// Validator is implemented by settings that check themselves after loading,
// for rules a type alone cannot express (a port range, two settings that
// must agree).
type Validator interface {
	Validate() error
}

// LoadEnv fills spec, a pointer to a struct whose fields carry
// `envconfig:"NAME"` and `default:"..."` tags, from the environment. Any
// error names the variable, so a bad value in a ConfigMap stops the pod with
// a message that says what to fix.
func LoadEnv(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		var perr *envconfig.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config: environment variable %s=%q is not a valid %s: %w",
				perr.KeyName, perr.Value, perr.TypeName, perr.Err)
		}
		return fmt.Errorf("config: %w", err)
	}
	if v, ok := spec.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}
