package tracing

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/kubelab/kubelab/services/platform/build"
)

func TestExportWanted(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set: no exporter, not OTLP to localhost", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"protocol alone names no collector", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, false},
		{"exporter named", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{"otlp named: the default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"none beats an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, false},
		{"SDK disabled beats an endpoint", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, false},
		{"SDK disabled beats an exporter", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, false},
		{"SDK explicitly enabled", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exportWanted(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Errorf("exportWanted(%v) = %v, want %v", tc.env, got, tc.want)
			}
		})
	}
}

func TestResourcePrecedence(t *testing.T) {
	info := build.Info{Service: "frontend", Version: "v1.2.3", Instance: "frontend-7d9f-abcde"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want map[attribute.Key]string
	}{
		{"defaults from the build", nil, map[attribute.Key]string{
			"service.name": "frontend", "service.version": "v1.2.3", "service.instance.id": "frontend-7d9f-abcde",
			"telemetry.sdk.language": "go",
		}},
		{"resource attributes override and add", map[string]string{
			"OTEL_RESOURCE_ATTRIBUTES": "service.version=canary,deployment.environment.name=staging",
		}, map[attribute.Key]string{
			"service.name": "frontend", "service.version": "canary", "deployment.environment.name": "staging",
			"service.instance.id": "frontend-7d9f-abcde",
		}},
		{"service name from the environment", map[string]string{"OTEL_SERVICE_NAME": "photo-web"}, map[attribute.Key]string{
			"service.name": "photo-web", "service.version": "v1.2.3",
		}},
		{"OTEL_SERVICE_NAME beats service.name in the attributes", map[string]string{
			"OTEL_SERVICE_NAME": "photo-web", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other,team=lab",
		}, map[attribute.Key]string{"service.name": "photo-web", "team": "lab"}},
		{"service.name in the attributes beats the build", map[string]string{
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=other",
		}, map[attribute.Key]string{"service.name": "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", "")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			res, err := Resource(context.Background(), info)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if got, ok := res.Set().Value(k); !ok || got.String() != want {
					t.Errorf("%s = %q, want %q (resource %v)", k, got.String(), want, res)
				}
			}
		})
	}
}

func TestSpanExporterFollowsTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string // the exporter's type, or part of the error
		wantErr bool
	}{
		{"OpenTelemetry's default protocol", nil, "*otlptrace.Exporter", false},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "*otlptrace.Exporter", false},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "*otlptrace.Exporter", false},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "*stdouttrace.Exporter", false},
		{"the traces variable wins", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "*otlptrace.Exporter", false},
		{"a protocol kubelab does not speak", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, `OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`, true},
		{"an exporter kubelab does not have", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, `OTEL_TRACES_EXPORTER="zipkin"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := spanExporter(context.Background(), func(k string) string { return tc.env[k] })
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one naming %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(context.Background()) }()
			if got := fmt.Sprintf("%T", exp); got != tc.want {
				t.Errorf("exporter %s, want %s", got, tc.want)
			}
		})
	}
}
