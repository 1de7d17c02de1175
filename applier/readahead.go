package applier

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// errStopped is the error of a stage whose pipeline was stopped.
var errStopped = errors.New("pipeline stopped")

// pipeline runs parts of the parent's work in stages, one goroutine per
// stage, so that on a machine with more than one core they overlap with each
// other and with the child. The stage that decodes a large, poorly
// compressible layer and hashes both the blob and the tar is what bounds its
// apply.
type pipeline struct {
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	stages   []*stage
}

func newPipeline() *pipeline {
	return &pipeline{stop: make(chan struct{})}
}

// close stops every stage, waits for their goroutines to return and
// unmaps their buffers. After close, what the stages' readers recorded may
// be read, and no buffer a stage handed out may be used.
func (p *pipeline) close() {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		for _, s := range p.stages {
			for _, buf := range s.mapped {
				unmapBuffer(buf)
			}
			s.mapped = nil
		}
	})
}

// stage reads r in a goroutine of its own into count buffers of size bytes,
// ahead of the returned stage's consumer. Only one goroutine may consume it,
// through take and give. When reuse is not nil, the stage goroutine calls it
// with a buffer before it writes into that buffer again, for a reader that
// still refers to what it wrote there.
func (p *pipeline) stage(r io.Reader, size, count int, reuse func([]byte)) *stage {
	s := &stage{
		full:  make(chan []byte, count),
		free:  make(chan []byte, count),
		stop:  p.stop,
		size:  size,
		left:  count,
		reuse: reuse,
	}
	p.stages = append(p.stages, s)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s.fill(r)
	}()
	return s
}

// stage is the reading end of a pipeline stage.
type stage struct {
	full chan []byte
	free chan []byte
	stop chan struct{}
	// size is the size of a buffer and left the number of buffers fill may
	// still map. Buffers are mapped as the stream needs them, so an empty
	// layer costs none.
	size int
	left int
	// mapped are the buffers fill mapped, unmapped when the pipeline
	// closes.
	mapped [][]byte
	// reuse, when not nil, is called with a buffer before fill writes
	// into it again.
	reuse func([]byte)
	// err is the error that ended the stage's reads, io.EOF included. It
	// is set before full is closed.
	err error
}

func (s *stage) fill(r io.Reader) {
	defer close(s.full)
	for {
		buf, err := s.buffer()
		if err != nil {
			s.err = err
			return
		}
		n, err := readFull(r, buf)
		if n > 0 {
			select {
			case s.full <- buf[:n]:
			case <-s.stop:
				s.err = errStopped
				return
			}
		}
		if err != nil {
			s.err = err
			return
		}
	}
}

// buffer returns an empty buffer for fill, or errStopped once the pipeline
// stops.
func (s *stage) buffer() ([]byte, error) {
	buf, err := s.nextBuffer()
	if err == nil && s.reuse != nil {
		s.reuse(buf)
	}
	return buf, err
}

// nextBuffer returns a buffer given back, a new one while fewer than count
// are mapped, or errStopped once the pipeline stops.
func (s *stage) nextBuffer() ([]byte, error) {
	select {
	case buf := <-s.free:
		return buf, nil
	default:
	}
	if s.left > 0 {
		buf, err := mapBuffer(s.size)
		if err != nil {
			return nil, fmt.Errorf("failed to map a stage buffer: %w", err)
		}
		s.left--
		s.mapped = append(s.mapped, buf)
		return buf, nil
	}
	select {
	case buf := <-s.free:
		return buf, nil
	case <-s.stop:
		return nil, errStopped
	}
}

// readFull reads until buf is full or r fails. Unlike io.ReadFull it returns
// r's own error, io.EOF included, whatever was read before it.
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// take returns the next filled buffer, which belongs to the caller until it
// gives it back. At the end of the stream it returns io.EOF, and the stage's
// error when reading failed.
func (s *stage) take() ([]byte, error) {
	select {
	case buf, ok := <-s.full:
		if !ok {
			return nil, s.err
		}
		return buf, nil
	case <-s.stop:
		return nil, errStopped
	}
}

// give returns a buffer of take for the stage to fill again.
func (s *stage) give(buf []byte) {
	// fill maps at most count buffers and free has room for count, so this
	// send cannot block.
	s.free <- buf[:cap(buf)]
}
