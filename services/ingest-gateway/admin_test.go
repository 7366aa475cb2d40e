package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/service"
)

// TestAdminPortSeparate: with GATEWAY_ADMIN_ADDR the admin routes move to
// their own plain-HTTP port and the API port serves none of them, so an
// Ingress to the API never publishes /metrics and a scraper allowed on
// the admin port never reaches the produce API.
func TestAdminPortSeparate(t *testing.T) {
	t.Parallel()
	k, reg := startKafkaAndRegistry(t)
	api, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"-kafka-brokers", k.Brokers()[0], "-registry-url", reg.URL(),
			"-gateway-http-addr", api, "-gateway-admin-addr", admin, "-gateway-grpc-addr", freeAddr(t),
			"-gateway-topics", "*", "-log-level", "error",
		})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return after shutdown")
		}
	}()
	status := func(method, url string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"records":[]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for status("GET", "http://"+admin+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("admin port never answered /readyz 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cases := []struct {
		method, url string
		want        int
	}{
		{"GET", "http://" + admin + "/metrics", http.StatusOK},
		{"GET", "http://" + admin + "/healthz", http.StatusOK},
		{"POST", "http://" + admin + "/v1/topics/orders/records", http.StatusNotFound},
		{"GET", "http://" + api + "/metrics", http.StatusNotFound},
		{"GET", "http://" + api + "/healthz", http.StatusNotFound},
		{"GET", "http://" + api + "/readyz", http.StatusNotFound},
	}
	for _, tc := range cases {
		if got := status(tc.method, tc.url); got != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.url, got, tc.want)
		}
	}
	// The API port still produces.
	if got := status("POST", "http://"+api+"/v1/topics/orders/records"); got == http.StatusNotFound || got == 0 {
		t.Errorf("POST to the API port = %d, want the produce API to answer", got)
	}
}

func TestAdminAddrMustDiffer(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	err := run(context.Background(), []string{"-gateway-http-addr", addr, "-gateway-admin-addr", addr, "-gateway-topics", "*"})
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_ADMIN_ADDR") || service.ExitCode(err) != 2 {
		t.Fatalf("run = %v, want a config error naming GATEWAY_ADMIN_ADDR", err)
	}
}
