package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Client makes read-only requests to one API server: GETs with the
// ServiceAccount's token, over TLS checked against the cluster's CA.
type Client struct {
	host      string
	userAgent string
	token     *tokenFile
	http      *http.Client
}

// NewClient returns a client for c. It fails if the CA cannot be read:
// without it no API server's certificate can be trusted.
func NewClient(c Config) (*Client, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read the cluster's CA: no PEM certificate in %s", c.CAFile)
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		// A watch is one long response: only the headers are bounded.
		ResponseHeaderTimeout: time.Minute,
		// Every watch shares one HTTP/2 connection. A silent connection
		// (a node gone, a NAT entry dropped) is pinged, and closed if no
		// answer comes, so the watches on it fail and start again
		// instead of waiting forever for events.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	return &Client{host: c.Host, userAgent: c.UserAgent, token: newTokenFile(c.TokenFile), http: &http.Client{Transport: transport}}, nil
}

// get asks for path and returns the response's body to read and close.
// An answer other than 200 OK is a *StatusError.
func (c *Client) get(ctx context.Context, path string, query url.Values) (io.ReadCloser, error) {
	token, err := c.token.get()
	if err != nil {
		return nil, err
	}
	u := c.host + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("make the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err // says GET, the URL and what failed
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		c.token.stale()
	}
	return nil, statusOf(resp)
}
