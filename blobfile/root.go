// Package blobfile reads layer blobs from files instead of through
// containerd's content API.
//
// In the daemon, Provider reads blobs straight from containerd's content
// root directory, which costs far less than streaming them over gRPC. It
// first queries the content API for the blob's Info in the request's namespace,
// so a namespace still sees only its own blobs. For the apply command,
// OpenLayer serves a single layer file. The applier verifies the digest of
// what it reads in both cases, so a file that does not match its name fails
// the apply.
package blobfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is the part of containerd's content store a Provider needs.
type Store interface {
	content.Provider
	content.InfoProvider
}

// RootResolver returns the content root directory to read blobs from, or ""
// when blobs are to be read through the content API.
type RootResolver interface {
	Root(ctx context.Context) string
}

// StaticRoot is a content root directory given in the configuration.
type StaticRoot string

// Root returns the directory.
func (r StaticRoot) Root(context.Context) string { return string(r) }

// Provider is a content.Provider that reads blobs from a content root and
// falls back to a content store.
type Provider struct {
	store Store
	root  RootResolver
}

// NewProvider returns a Provider that checks blobs in store and reads them
// from the directory root resolves to.
func NewProvider(store Store, root RootResolver) *Provider {
	return &Provider{store: store, root: root}
}

// ReaderAt opens the blob of desc. It first calls Info on the store with
// ctx, so a blob the request's namespace cannot see fails with the store's
// error (errdefs.ErrNotFound). It then opens <root>/blobs/<algorithm>/<hex>,
// and reads through the store when there is no root or the file cannot be
// opened. It does not check the file's content. The caller verifies it.
func (p *Provider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt,
	error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("invalid blob digest %q: %v: %w",
			desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if _, err := p.store.Info(ctx, desc.Digest); err != nil {
		return nil, err
	}

	root := p.root.Root(ctx)
	if root == "" {
		return p.store.ReaderAt(ctx, desc)
	}
	path := filepath.Join(root, "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())
	ra, err := openFile(path)
	if err != nil {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).
			Debug("failed to open blob in content root, reading it through the content API")
		return p.store.ReaderAt(ctx, desc)
	}
	return ra, nil
}

// fileReaderAt is a content.ReaderAt over an open file.
type fileReaderAt struct {
	*os.File
	size int64
}

func (f *fileReaderAt) Size() int64 { return f.size }

func openFile(path string) (*fileReaderAt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return &fileReaderAt{File: f, size: fi.Size()}, nil
}
