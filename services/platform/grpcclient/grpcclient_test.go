package grpcclient

import (
	"strings"
	"testing"
)

func TestDialChecksTheTargetFitsTheBalancing(t *testing.T) {
	retry := []Method{{"imageproc.v1.ImageService", "GetImage"}}
	tests := []struct {
		target, balancing, wantErr string
	}{
		{"dns:///imageproc-headless:50051", RoundRobin, ""},
		{"dns://10.96.0.10/imageproc-headless:50051", RoundRobin, ""},
		{"ipv4:127.0.0.1:1,127.0.0.1:2", RoundRobin, ""},
		{"imageproc:50051", PickFirst, ""},
		{"imageproc:50051", RoundRobin, "round_robin needs"},
		{"dns:///imageproc:50051", "random", "balancing"},
	}
	for _, tt := range tests {
		conn, err := Dial(Options{Target: tt.target, Balancing: tt.balancing, Retry: retry})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Dial(%q, %s): %v", tt.target, tt.balancing, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Dial(%q, %s) = %v, want an error containing %q", tt.target, tt.balancing, err, tt.wantErr)
		}
		if conn != nil {
			_ = conn.Close()
		}
	}
}

func TestServiceConfig(t *testing.T) {
	cfg, err := serviceConfig(PickFirst, "svc", []Method{{"s", "m"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"loadBalancingConfig":[{"pick_first":{}}]`, `"name":[{"service":"s","method":"m"}]`, `"retryableStatusCodes":["UNAVAILABLE"]`, `"healthCheckConfig":{"serviceName":"svc"}`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("%s lacks %s", cfg, want)
		}
	}
	if cfg, _ := serviceConfig(RoundRobin, "", nil); strings.Contains(cfg, "methodConfig") || strings.Contains(cfg, "healthCheck") {
		t.Errorf("no retries asked, got %s", cfg)
	}
}
