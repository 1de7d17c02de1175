package applier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// base64MediaType is a made-up media type of a base64-encoded tar, decoded
// by a stream processor registered with containerd's diff package.
const base64MediaType = "application/vnd.example.layer.v1.tar+base64"

var registerBase64 sync.Once

// The non-distributable layer types are deprecated but still found in
// registries.
const (
	nonDistributable     = ocispec.MediaTypeImageLayerNonDistributable     //nolint:staticcheck
	nonDistributableGzip = ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck
	nonDistributableZstd = ocispec.MediaTypeImageLayerNonDistributableZstd //nolint:staticcheck
)

type base64Processor struct {
	io.Reader
	stream diff.StreamProcessor
}

func (p *base64Processor) MediaType() string { return ocispec.MediaTypeImageLayer }
func (p *base64Processor) Close() error      { return p.stream.Close() }

func newBase64Processor(_ context.Context, stream diff.StreamProcessor,
	_ map[string]typeurl.Any) (diff.StreamProcessor, error) {
	decoder := base64.NewDecoder(base64.StdEncoding, stream)
	return &base64Processor{Reader: decoder, stream: stream}, nil
}

func registerBase64Processor() {
	registerBase64.Do(func() {
		diff.RegisterProcessor(diff.StaticHandler(base64MediaType, newBase64Processor))
	})
}

func sampleTar(t *testing.T) []byte {
	t.Helper()
	random := make([]byte, 256<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	data, err := lt.Tar(lt.Dir("d"), lt.File("d/random", string(random)), lt.File("d/small", "x"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustCompress(t *testing.T, data []byte, c lt.Compression) []byte {
	t.Helper()
	blob, err := lt.Compress(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// applyBlob stores blob with mediaType and applies it with our applier onto
// a fresh bind target.
func applyBlob(t *testing.T, mediaType string,
	blob []byte) (ocispec.Descriptor, ocispec.Descriptor, error) {
	t.Helper()
	store := lt.NewStore(t)
	desc := lt.WriteBlob(t, store, mediaType, blob)
	mounts, _, err := newStack(t, bindTarget).next()
	if err != nil {
		t.Fatal(err)
	}
	diffDesc, err := applier.New(store).Apply(context.Background(), desc, mounts)
	return desc, diffDesc, err
}

func TestAcceptedLayers(t *testing.T) {
	requireRoot(t)
	registerBase64Processor()
	tarData := sampleTar(t)
	gz, zst := mustCompress(t, tarData, "gzip"), mustCompress(t, tarData, "zstd")

	// A skippable frame (magic 0x184D2A5?) that decoders must pass over.
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184D2A50)
	skippable = binary.LittleEndian.AppendUint32(skippable, 5)
	skippable = append(skippable, "hello"...)

	padded := append(append([]byte{}, tarData...), make([]byte, 9<<10)...)

	cases := []struct {
		name      string
		mediaType string
		blob      []byte
		// diffOf is the decompressed stream the diffID must cover.
		diffOf []byte
	}{
		{"oci tar", ocispec.MediaTypeImageLayer, tarData, tarData},
		{"oci gzip", ocispec.MediaTypeImageLayerGzip, gz, tarData},
		{"oci zstd", ocispec.MediaTypeImageLayerZstd, zst, tarData},
		{"oci non-distributable tar", nonDistributable, tarData, tarData},
		{"oci non-distributable gzip", nonDistributableGzip, gz, tarData},
		{"oci non-distributable zstd", nonDistributableZstd, zst, tarData},
		{"docker tar", images.MediaTypeDockerSchema2Layer, tarData, tarData},
		{"docker gzip", images.MediaTypeDockerSchema2LayerGzip, gz, tarData},
		{"docker zstd", images.MediaTypeDockerSchema2LayerZstd, zst, tarData},
		{"docker foreign gzip", images.MediaTypeDockerSchema2LayerForeignGzip, gz, tarData},
		{"zstd after a skippable frame", ocispec.MediaTypeImageLayerZstd,
			append(skippable, zst...), tarData},
		{"zero padding after the end of archive", ocispec.MediaTypeImageLayer, padded, padded},
		{"bytes after the last gzip member", ocispec.MediaTypeImageLayerGzip,
			append(append([]byte{}, gz...), "trailing junk"...), tarData},
		{"stream processor", base64MediaType,
			[]byte(base64.StdEncoding.EncodeToString(tarData)), tarData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diffDesc, err := applyBlob(t, tc.mediaType, tc.blob)
			if err != nil {
				t.Fatalf("apply failed: %v", err)
			}
			if want := digest.FromBytes(tc.diffOf); diffDesc.Digest != want {
				t.Errorf("diffID %s, want %s", diffDesc.Digest, want)
			}
			if diffDesc.Size != int64(len(tc.diffOf)) {
				t.Errorf("size %d, want %d", diffDesc.Size, len(tc.diffOf))
			}
			if diffDesc.MediaType != ocispec.MediaTypeImageLayer {
				t.Errorf("media type %s, want %s", diffDesc.MediaType, ocispec.MediaTypeImageLayer)
			}
		})
	}
}

func TestBrokenBlobs(t *testing.T) {
	requireRoot(t)
	tarData := sampleTar(t)
	gz := mustCompress(t, tarData, "gzip")
	badCRC := append([]byte{}, gz...)
	badCRC[len(badCRC)-8] ^= 0xff

	zst := mustCompress(t, tarData, "zstd")

	cases := []struct {
		name      string
		mediaType string
		blob      []byte
		// entry, when not empty, is the entry the error must name.
		entry string
	}{
		{"gzip cut in the middle of a file", ocispec.MediaTypeImageLayerGzip, gz[:len(gz)/2],
			"d/random"},
		{"zstd cut in the middle of a file", ocispec.MediaTypeImageLayerZstd, zst[:len(zst)/2],
			"d/random"},
		{"gzip with a corrupted crc", ocispec.MediaTypeImageLayerGzip, badCRC, ""},
		{"gzip labelled as zstd", ocispec.MediaTypeImageLayerZstd, gz, ""},
		{"bytes that are not a tar", ocispec.MediaTypeImageLayer,
			bytes.Repeat([]byte("not a tar "), 200), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desc, _, err := applyBlob(t, tc.mediaType, tc.blob)
			if err == nil {
				t.Fatal("apply succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), desc.Digest.String()) {
				t.Errorf("error %q does not name layer %s", err, desc.Digest)
			}
			if tc.entry != "" && !strings.Contains(err.Error(), fmt.Sprintf("entry %q", tc.entry)) {
				t.Errorf("error %q does not name entry %s", err, tc.entry)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not invalid argument", err)
			}
		})
	}
}

func TestBlobDigestMismatch(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	store, err := local.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	blob := mustCompress(t, sampleTar(t), "gzip")
	desc := lt.WriteBlob(t, store, ocispec.MediaTypeImageLayerGzip, blob)
	path := filepath.Join(root, "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte{}, blob...)
	tampered[len(tampered)/2] ^= 0x01
	if err := os.WriteFile(path, tampered, 0o644); err != nil {
		t.Fatal(err)
	}

	mounts, _, err := newStack(t, bindTarget).next()
	if err != nil {
		t.Fatal(err)
	}
	_, err = applier.New(store).Apply(context.Background(), desc, mounts)
	if err == nil {
		t.Fatal("apply of a tampered blob succeeded")
	}
	if !strings.Contains(err.Error(), desc.Digest.String()) {
		t.Errorf("error %q does not name layer %s", err, desc.Digest)
	}
}

func TestUnknownMediaType(t *testing.T) {
	requireRoot(t)
	store := lt.NewStore(t)
	desc := lt.WriteBlob(t, store, "application/vnd.example.unknown", []byte("whatever"))
	mounts, dir, err := newStack(t, bindTarget).next()
	if err != nil {
		t.Fatal(err)
	}
	_, err = applier.New(store).Apply(context.Background(), desc, mounts)
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("error %v, want errdefs.ErrNotImplemented", err)
	}
	var childErr *applier.ChildError
	if errors.As(err, &childErr) {
		t.Errorf("error %v comes from a child, want the parent to reject the layer", err)
	}
	if m := buildManifest(t, dir); len(m.Entries) != 1 {
		t.Errorf("target has %v, want it empty", m.Paths())
	}
}

func TestCompareNotImplemented(t *testing.T) {
	_, err := applier.New(lt.NewStore(t)).Compare(context.Background(), nil, nil)
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Compare returned %v, want errdefs.ErrNotImplemented", err)
	}
}

// errBackend is the error of failingProvider.
var errBackend = errors.New("connection to the content store reset")

// failingProvider serves one blob whose reads fail with errBackend from
// offset failAt on.
type failingProvider struct {
	data   []byte
	failAt int64
}

// ReaderAt returns a reader of the blob.
func (p *failingProvider) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return p, nil
}

func (p *failingProvider) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.failAt {
		return 0, errBackend
	}
	n := copy(b, p.data[off:p.failAt])
	if n < len(b) {
		return n, errBackend
	}
	return n, nil
}

func (p *failingProvider) Size() int64  { return int64(len(p.data)) }
func (p *failingProvider) Close() error { return nil }

// TestProviderFailure checks that a provider failing mid-blob keeps its
// error visible and is not reported as invalid layer content.
func TestProviderFailure(t *testing.T) {
	requireRoot(t)
	for _, c := range []lt.Compression{"", "gzip"} {
		t.Run("compression "+string(c), func(t *testing.T) {
			random := make([]byte, 4<<20)
			if _, err := rand.Read(random); err != nil {
				t.Fatal(err)
			}
			data, err := lt.Tar(lt.File("big", string(random)))
			if err != nil {
				t.Fatal(err)
			}
			mediaType := ocispec.MediaTypeImageLayer
			if c != "" {
				data = mustCompress(t, data, c)
				mediaType = ocispec.MediaTypeImageLayerGzip
			}
			desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data),
				Size: int64(len(data))}
			mounts, _, err := newStack(t, bindTarget).next()
			if err != nil {
				t.Fatal(err)
			}

			provider := &failingProvider{data: data, failAt: int64(len(data)) / 2}
			_, err = applier.New(provider).Apply(context.Background(), desc, mounts)
			if !errors.Is(err, errBackend) {
				t.Fatalf("err = %v, want the provider's error", err)
			}
			if errdefs.IsInvalidArgument(err) {
				t.Errorf("err = %v is invalid argument, want the provider's kind", err)
			}
			if !strings.Contains(err.Error(), desc.Digest.String()) {
				t.Errorf("error %q does not name layer %s", err, desc.Digest)
			}
		})
	}
}
