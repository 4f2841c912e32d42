package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Registry is a running Apicurio Registry (2.6, in-memory storage), a real schema registry whose
// /apis/ccompat/v7 API is the Confluent Schema Registry's.
type Registry struct {
	url  string
	dir  string
	once sync.Once
}

// StartRegistry starts Apicurio Registry through scripts/registry.sh on a free port (log in
// dir/registry.log; "" means a new temporary folder) and waits, up to 90 s, until its
// Confluent-compatible API answers. FERRY_TEST_REGISTRY=URL (a Confluent-compatible base URL)
// uses that registry instead. Without the unpacked app that scripts/deps.sh installs it returns
// an error wrapping ErrUnavailable.
func StartRegistry(ctx context.Context, dir string) (*Registry, error) {
	if ext := os.Getenv("FERRY_TEST_REGISTRY"); ext != "" {
		return &Registry{url: ext}, nil
	}
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cacheDir(repo), "apicurio", ".version")); err != nil {
		return nil, fmt.Errorf("start registry: %s/apicurio missing: %w", cacheDir(repo), ErrUnavailable)
	}
	if _, err := execLookPath("java"); err != nil {
		return nil, fmt.Errorf("start registry: java not found: %w", ErrUnavailable)
	}
	dir, err = makeDir(dir, "ferry-registry-")
	if err != nil {
		return nil, err
	}
	url, err := runScript(ctx, "registry.sh", "start", dir)
	if err != nil {
		return nil, err
	}
	return &Registry{url: url, dir: dir}, nil
}

// URL is the Confluent-compatible base URL, http://127.0.0.1:PORT/apis/ccompat/v7.
func (r *Registry) URL() string { return r.url }

// Client returns a franz-go registry client for URL.
func (r *Registry) Client() *sr.Client {
	cl, err := sr.NewClient(sr.URLs(r.url))
	if err != nil {
		panic(err) // only a bad option fails, and there is none
	}
	return cl
}

// Stop stops the registry; its data is in memory and is lost. Safe to call twice; a no-op for an
// external registry.
func (r *Registry) Stop() {
	r.once.Do(func() {
		if r.dir == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = runScript(ctx, "registry.sh", "stop", r.dir)
	})
}

var sharedRegistry struct {
	mu  sync.Mutex
	reg *Registry
	dir string
}

// SharedRegistry returns the test binary's shared registry, starting it on first use;
// CloseShared stops it. Tests share it by registering subjects of their own names.
func SharedRegistry(ctx context.Context) (*Registry, error) {
	sharedRegistry.mu.Lock()
	defer sharedRegistry.mu.Unlock()
	if sharedRegistry.reg != nil {
		return sharedRegistry.reg, nil
	}
	dir, err := os.MkdirTemp("", "ferry-registry-")
	if err != nil {
		return nil, err
	}
	r, err := StartRegistry(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	sharedRegistry.reg, sharedRegistry.dir = r, dir
	return r, nil
}

func closeSharedRegistry() {
	sharedRegistry.mu.Lock()
	defer sharedRegistry.mu.Unlock()
	if sharedRegistry.reg != nil {
		sharedRegistry.reg.Stop()
		_ = os.RemoveAll(sharedRegistry.dir)
		sharedRegistry.reg = nil
	}
}
