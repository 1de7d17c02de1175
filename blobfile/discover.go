package blobfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/introspection"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
)

// contentPluginFilter selects containerd's local content store in the
// introspection service.
var contentPluginFilter = fmt.Sprintf("type==%s,id==content", plugins.ContentPlugin)

// Discovery finds containerd's content root through containerd's
// introspection service, where the content plugin exports it as "root".
//
// The daemon may start before containerd, so Discovery queries containerd on
// first use and again after each failed call. Once containerd has answered, the result
// is kept: a root that is missing from the answer, or that this process
// cannot read (for example because containerd runs in another mount
// namespace), is reported once and the content API is used from then on.
type Discovery struct {
	service introspection.Service

	mu       sync.Mutex
	resolved bool
	root     string
}

// NewDiscovery returns a Discovery that queries service.
func NewDiscovery(service introspection.Service) *Discovery {
	return &Discovery{service: service}
}

// Root returns the content root, or "" while it is unknown or unusable.
func (d *Discovery) Root(ctx context.Context) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resolved {
		return d.root
	}

	resp, err := d.service.Plugins(ctx, contentPluginFilter)
	if err != nil {
		log.G(ctx).WithError(err).Debug("failed to look up containerd's content root, will retry")
		return ""
	}
	d.resolved = true

	var root string
	for _, p := range resp.Plugins {
		if r := p.Exports["root"]; r != "" {
			root = r
			break
		}
	}
	if root == "" {
		log.G(ctx).Info("containerd exports no content root, reading blobs through the content API")
		return ""
	}
	if err := checkRoot(root); err != nil {
		log.G(ctx).WithError(err).WithField("root", root).
			Info("containerd's content root is not readable here, " +
				"reading blobs through the content API")
		return ""
	}
	log.G(ctx).WithField("root", root).Info("reading blobs from containerd's content root")
	d.root = root
	return root
}

func checkRoot(root string) error {
	dir := filepath.Join(root, "blobs")
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
