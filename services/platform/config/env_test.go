package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/platform/config"
)

type settings struct {
	Port  int           `envconfig:"TEST_PORT" default:"8080"`
	Drain time.Duration `envconfig:"TEST_DRAIN" default:"5s"`
}

func (s *settings) Validate() error {
	if s.Port < 1 || s.Port > 65535 {
		return errors.New("TEST_PORT must be 1-65535")
	}
	return nil
}

func TestLoadEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    settings
		wantErr string
	}{
		{name: "defaults", want: settings{Port: 8080, Drain: 5 * time.Second}},
		{name: "set", env: map[string]string{"TEST_PORT": "9000", "TEST_DRAIN": "1s"}, want: settings{Port: 9000, Drain: time.Second}},
		{name: "bad type names the variable", env: map[string]string{"TEST_PORT": "eighty"}, wantErr: "TEST_PORT"},
		{name: "bad duration names the variable", env: map[string]string{"TEST_DRAIN": "5"}, wantErr: "TEST_DRAIN"},
		{name: "validation", env: map[string]string{"TEST_PORT": "0"}, wantErr: "TEST_PORT must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var got settings
			err := config.LoadEnv(&got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
