package applier

import (
	"errors"
	"io"
	"sync"
)

// errStopped is the error of a stage whose pipeline was stopped.
var errStopped = errors.New("pipeline stopped")

// pipeline runs parts of the parent's work in stages, one goroutine per
// stage, so that on a machine with more than one core they overlap with each
// other and with the child. A layer's blob hash and diffID
// hash are each about as costly as the child's writes, and done in sequence
// they are what bounds the apply of a large, poorly compressible layer.
type pipeline struct {
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newPipeline() *pipeline {
	return &pipeline{stop: make(chan struct{})}
}

// close stops every stage and waits for their goroutines to return. After
// close, what the stages' readers recorded may be read.
func (p *pipeline) close() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// stage reads r in a goroutine of its own into count buffers of size bytes,
// ahead of the returned stage's consumer. Only one goroutine may consume it,
// through WriteTo.
func (p *pipeline) stage(r io.Reader, size, count int) *stage {
	s := &stage{
		full: make(chan []byte, count),
		free: make(chan []byte, count),
		stop: p.stop,
		size: size,
		left: count,
	}
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
	// still allocate. Buffers are allocated as the stream needs them, so an
	// empty layer costs none.
	size int
	left int
	// err is the error that ended the stage's reads, io.EOF included. It
	// is set before full is closed.
	err error
	// current is the buffer being written out and unread its unwritten part.
	current []byte
	unread  []byte
}

func (s *stage) fill(r io.Reader) {
	defer close(s.full)
	for {
		buf, ok := s.buffer()
		if !ok {
			s.err = errStopped
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

// buffer returns an empty buffer for fill, or false once the pipeline stops.
func (s *stage) buffer() ([]byte, bool) {
	select {
	case buf := <-s.free:
		return buf, true
	default:
	}
	if s.left > 0 {
		s.left--
		return make([]byte, s.size), true
	}
	select {
	case buf := <-s.free:
		return buf, true
	case <-s.stop:
		return nil, false
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

// next makes the next filled buffer the one being read. It returns false
// with the stage's error when there is none.
func (s *stage) next() (bool, error) {
	if s.current != nil {
		// buffer allocates at most count buffers and free has room for
		// count, so this send cannot block.
		s.free <- s.current[:cap(s.current)]
		s.current = nil
	}
	select {
	case buf, ok := <-s.full:
		if !ok {
			return false, s.err
		}
		s.current, s.unread = buf, buf
		return true, nil
	case <-s.stop:
		return false, errStopped
	}
}

// WriteTo writes the stage's buffers to w as they fill, without copying
// them first. It returns nil at the end of the stream, the stage's error
// when reading failed and w's error when writing did.
func (s *stage) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for {
		for len(s.unread) == 0 {
			ok, err := s.next()
			if !ok {
				if err == io.EOF {
					err = nil
				}
				return written, err
			}
		}
		n, err := w.Write(s.unread)
		written += int64(n)
		s.unread = s.unread[n:]
		if err != nil {
			return written, err
		}
	}
}
