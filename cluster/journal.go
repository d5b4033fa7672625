package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/journal"
)

// JournalConfig configures OpenJournal. Zero values of every field but
// Cluster, Partition and Lease are usable.
type JournalConfig struct {
	// Cluster is the cluster name (prefix of the stream name). Required.
	Cluster string
	// Partition whose journal this is. Required.
	Partition Partition
	// Lease is the caller's lease on Partition; its epoch is written into
	// every record, and Append refuses (ErrFenced) once it is not Valid.
	// Required.
	Lease *Lease
	// Replicas of the stream: 3 (or more) on a NATS cluster. Default 1.
	Replicas int
	// AckTimeout bounds the wait for one publish acknowledgement before the
	// journal checks in the stream what became of it. Default 5s.
	AckTimeout time.Duration
	// RetryTimeout bounds how long an append whose publish failed (NATS
	// server down, stream leader election) is retried before the journal
	// fail-stops with ErrFailed. Default 30s.
	RetryTimeout time.Duration
	// MaxPending bounds appends not yet acknowledged; Append waits for room.
	// Default 4096.
	MaxPending int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *JournalConfig) withDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = 30 * time.Second
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports whether the config is usable (after defaults).
func (c JournalConfig) Validate() error {
	c.withDefaults()
	if err := validName(c.Cluster); err != nil {
		return err
	}
	switch {
	case c.Lease == nil:
		return fmt.Errorf("%w: journal needs a Lease", ErrInvalidConfig)
	case c.Lease.Partition() != c.Partition:
		return fmt.Errorf("%w: lease is for %s, journal for %s", ErrInvalidConfig, c.Lease.Partition(), c.Partition)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: journal Replicas %d not in 1..5", ErrInvalidConfig, c.Replicas)
	case c.AckTimeout < 0 || c.RetryTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	case c.MaxPending < 1:
		return fmt.Errorf("%w: journal MaxPending %d < 1", ErrInvalidConfig, c.MaxPending)
	}
	return nil
}

// Journal is a partition's journal in its own JetStream stream
// (JournalStream), written only by the partition's owner. Its method set is
// that of the local journal.Journal the runtime uses.
//
// # Conditional, pipelined appends
//
// Every publish carries two conditions: Nats-Expected-Last-Sequence (the
// k-th record appended after the journal's last known sequence L expects
// L+k-1, so it can only ever be stored at L+k; one stream per partition
// makes the stream-wide sequence exact) and Nats-Expected-Last-Msg-Id, the
// id ("epoch:seq") of this writer's previous record. The sequence alone is
// not enough with pipelining: when a new owner's fence takes L+1, the
// stale owner's record for L+1 fails, but its record for L+2, expecting
// L+1, would fit right after the fence. The id chain refuses it, and every
// later one, because the last message is not the one the stale writer
// wrote. Publishes are asynchronous and pipelined; acknowledgements are
// taken in sequence order by one notifier goroutine, which calls the done
// callbacks in that order.
//
// When an append fails, whatever the error — even "wrong last sequence",
// which a newly elected stream leader also answers for records its
// predecessor had not committed — the notifier stops new appends and
// settles every pending record in order by reading the stream (from the
// leader): a message at the record's sequence with our bytes means it is
// stored (acknowledged); another writer's bytes there mean a new owner took
// over (that record and all later ones fail with ErrFenced: none of them
// can be stored, and Append refuses from then on); a free sequence means
// it was not stored and it is published again with the same conditions.
// This is idempotent because a record can land nowhere but at its own
// sequence. After RetryTimeout the journal fail-stops with ErrFailed (the
// pending records' fate unknown).
//
// # Takeover
//
// OpenJournal appends a fence record carrying the new owner's epoch,
// expecting the stream's last sequence L (retried when a stale owner
// appended meanwhile). Records before the fence are part of the log; every
// append of a stale owner after it fails.
type Journal struct {
	cfg     JournalConfig
	js      jetstream.JetStream
	stream  jetstream.Stream
	name    string // stream name
	subject string
	token   string
	epoch   uint64
	log     *slog.Logger

	// ignoreLease (tests only) skips the lease check, to prove that the
	// stream fence alone stops a stale owner that believes it is valid.
	ignoreLease bool

	sem   chan struct{} // held while publishing, so wire order = seq order
	slots chan struct{} // one per pending record (MaxPending)
	wake  chan struct{}

	mu      sync.Mutex
	next    uint64 // seq the next Append gets
	lastID  string // msg id of record next-1
	queue   []*pending
	err     error // set once fenced or failed
	closed  bool
	closing chan struct{}
	stats   journal.Stats

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

type pending struct {
	seq    uint64
	id     string // Nats-Msg-Id: epoch:seq
	prevID string // Nats-Expected-Last-Msg-Id: the record before
	data   []byte
	fut    jetstream.PubAckFuture // nil when the publish failed at once
	pubErr error
	done   func(uint64, error)
}

var _ interface {
	Append(context.Context, *journal.Record, func(uint64, error)) (uint64, error)
	Replay(context.Context, uint64, func(*journal.Record) error) error
	Release(uint64) error
	LastSeq() uint64
	Stats() journal.Stats
	Close() error
} = (*Journal)(nil)

// maxFenceAttempts bounds how often OpenJournal re-reads the stream end
// because a stale owner appended between the read and the fence.
const maxFenceAttempts = 20

// OpenJournal creates the partition's stream if needed (file storage,
// cfg.Replicas) and takes it over for cfg.Lease's epoch by appending a
// fence record. It fails with ErrFenced when the lease is not valid or the
// stream already holds a record of a higher epoch.
func OpenJournal(ctx context.Context, nc *nats.Conn, cfg JournalConfig) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending+1))
	if err != nil {
		return nil, fmt.Errorf("cluster: open journal: %w", err)
	}
	j := &Journal{
		cfg:     cfg,
		js:      js,
		name:    JournalStream(cfg.Cluster, cfg.Partition),
		subject: JournalSubject(cfg.Cluster, cfg.Partition),
		token:   cfg.Partition.Token(),
		epoch:   cfg.Lease.Epoch(),
		sem:     make(chan struct{}, 1),
		slots:   make(chan struct{}, cfg.MaxPending),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	j.log = cfg.Logger.With("stream", j.name, "epoch", j.epoch)
	scfg := jetstream.StreamConfig{
		Name:        j.name,
		Description: "reactor partition journal " + cfg.Partition.String(),
		Subjects:    []string{j.subject},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxMsgSize:  MaxRecordSize,
		// Reads that decide a record's fate must come from the leader, not
		// a lagging replica: no direct get.
		AllowDirect: false,
		// Msg ids serve the expected-last-msg-id chain, not dedup: keep
		// the dedup window (and its memory) small.
		Duplicates: time.Second,
		// Purges come from Release only; nothing expires or is discarded.
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardNew,
	}
	err = retrying(ctx, func(ctx context.Context) (err error) {
		j.stream, err = js.CreateStream(ctx, scfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			j.stream, err = js.Stream(ctx, j.name)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open journal stream %s: %w", j.name, err)
	}
	if err := j.fence(ctx); err != nil {
		return nil, err
	}
	go j.notifier()
	return j, nil
}

// fence appends the fence record at the stream's end (see Journal).
func (j *Journal) fence(ctx context.Context) error {
	var tried []byte // a fence sent without an answer, at tried's seq
	var triedSeq uint64
	for attempt := 0; ; attempt++ {
		if err := j.cfg.Lease.Err(); err != nil {
			return err
		}
		info, err := streamInfo(ctx, j.stream)
		if err != nil {
			return fmt.Errorf("cluster: fence journal %s: %w", j.name, err)
		}
		last := info.State.LastSeq
		if tried != nil && last >= triedSeq {
			// Did our unanswered fence land?
			m, err := j.getMsg(ctx, triedSeq)
			if err == nil && bytes.Equal(m.Data, tried) {
				j.next, j.lastID = triedSeq+1, msgID(j.epoch, triedSeq)
				return nil
			}
		}
		var lastID string
		if last > 0 {
			m, err := j.getMsg(ctx, last)
			if err == nil {
				if f, derr := decodeFrame(m.Data); derr == nil && f.epoch > j.epoch {
					return fmt.Errorf("%w: journal %s already holds epoch %d at seq %d, ours is %d", ErrFenced, j.name, f.epoch, last, j.epoch)
				}
				lastID = m.Header.Get(jetstream.MsgIDHeader)
			} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("cluster: fence journal %s: read seq %d: %w", j.name, last, err)
			}
		}
		if attempt >= maxFenceAttempts {
			return fmt.Errorf("%w: could not fence journal %s in %d attempts (another writer keeps appending)", ErrFenced, j.name, attempt)
		}
		data, err := encodeFrame(j.token, j.epoch, last+1, true, &journal.Record{Time: time.Now().UnixNano()})
		if err != nil {
			return err
		}
		fp := &pending{seq: last + 1, id: msgID(j.epoch, last+1), prevID: lastID}
		pctx, cancel := context.WithTimeout(ctx, stepTimeout)
		ack, err := j.js.PublishMsg(pctx, &nats.Msg{Subject: j.subject, Data: data}, fp.publishOpts()...)
		cancel()
		switch {
		case err == nil && ack.Sequence == last+1:
			j.next, j.lastID = last+2, fp.id
			j.log.Info("cluster: journal fenced for new epoch", "seq", ack.Sequence)
			return nil
		case err == nil:
			return fmt.Errorf("%w: fence of journal %s stored at seq %d, expected %d", ErrFailed, j.name, ack.Sequence, last+1)
		case isWrongLastSeq(err):
			tried = nil // a stale owner appended meanwhile: read again
		default:
			if ctx.Err() != nil {
				return fmt.Errorf("cluster: fence journal %s: %w", j.name, err)
			}
			tried, triedSeq = data, last+1
			time.Sleep(backoff(attempt))
		}
	}
}

// streamInfo asks the stream's leader for its state, retrying lost
// answers.
func streamInfo(ctx context.Context, stream jetstream.Stream) (info *jetstream.StreamInfo, err error) {
	err = retrying(ctx, func(ctx context.Context) (err error) {
		info, err = stream.Info(ctx)
		return err
	})
	return info, err
}

// getMsg reads the record at seq from the stream's leader, retrying lost
// answers.
func (j *Journal) getMsg(ctx context.Context, seq uint64) (m *jetstream.RawStreamMsg, err error) {
	err = retrying(ctx, func(ctx context.Context) (err error) {
		m, err = j.stream.GetMsg(ctx, seq)
		return err
	})
	return m, err
}

// stepTimeout bounds one JetStream request of a takeover. A request sent
// to a stream's (or the meta) leader that has just died gets no answer at
// all: waiting for the takeover's whole deadline left partitions unserved
// for 30 s after a kill -9 of a node together with its embedded NATS
// server, while a new leader answers the next try within a second or two.
const stepTimeout = 2 * time.Second

// retrying calls fn with a context bounded by stepTimeout until it
// succeeds, fails other than by a lost answer, or ctx ends.
func retrying(ctx context.Context, fn func(context.Context) error) error {
	return retryingSteps(ctx, false, fn)
}

// retryingSteps is retrying, with each try allowed twice as long as the one
// before if growing: for a request whose answer may take longer than a
// step (a large value), while the first try still finds a dead leader
// after one step.
func retryingSteps(ctx context.Context, growing bool, fn func(context.Context) error) error {
	step := stepTimeout
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, step)
		err := fn(sctx)
		cancel()
		if err == nil || ctx.Err() != nil || !lostAnswer(err) {
			return err
		}
		if growing {
			step *= 2
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff(attempt)):
		}
	}
}

// lostAnswer reports whether err says a request got no answer in time (or
// found nobody to answer it): trying again may succeed.
func lostAnswer(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

func msgID(epoch, seq uint64) string {
	return strconv.FormatUint(epoch, 10) + ":" + strconv.FormatUint(seq, 10)
}

// publishOpts are the conditions of a record: the stream's last sequence
// and the last message's id must be the ones this writer left there.
func (p *pending) publishOpts() []jetstream.PublishOpt {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequence(p.seq - 1), jetstream.WithMsgID(p.id)}
	if p.prevID != "" {
		opts = append(opts, jetstream.WithExpectLastMsgID(p.prevID))
	}
	return opts
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 4)
	return min(d, time.Second)
}

// Append encodes rec with the lease's epoch, publishes it conditionally and
// returns its seq (also set in rec.Seq) without waiting for the ack. done
// (may be nil) is called exactly once, in seq order, from the journal's
// notifier goroutine: err == nil once JetStream acknowledged the record
// (stored by a quorum of the stream's replicas, synced per the servers'
// sync_interval); an error wrapping ErrFenced when it was not stored
// because a new owner took over; wrapping ErrFailed when its fate is
// unknown. done must not block. Append waits (honouring ctx) while
// MaxPending records are pending.
func (j *Journal) Append(ctx context.Context, rec *journal.Record, done func(seq uint64, err error)) (uint64, error) {
	select {
	case j.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-j.closing:
		return 0, ErrClosed
	}
	select {
	case j.sem <- struct{}{}:
	case <-ctx.Done():
		<-j.slots
		return 0, ctx.Err()
	case <-j.closing:
		<-j.slots
		return 0, ErrClosed
	}
	defer func() { <-j.sem }()
	j.mu.Lock()
	err := j.err
	if j.closed {
		err = ErrClosed
	}
	if err == nil && !j.ignoreLease {
		if lerr := j.cfg.Lease.Err(); lerr != nil {
			j.failLocked(lerr)
			err = j.err
		}
	}
	seq, prevID := j.next, j.lastID
	j.mu.Unlock()
	if err != nil {
		<-j.slots
		return 0, err
	}
	data, err := encodeFrame(j.token, j.epoch, seq, false, rec)
	if err != nil {
		<-j.slots
		return 0, err
	}
	p := &pending{seq: seq, id: msgID(j.epoch, seq), prevID: prevID, data: data, done: done}
	p.fut, p.pubErr = j.js.PublishMsgAsync(&nats.Msg{Subject: j.subject, Data: data}, p.publishOpts()...)
	j.mu.Lock()
	j.next++
	j.lastID = p.id
	j.queue = append(j.queue, p)
	j.stats.Appended++
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	rec.Seq = seq
	return seq, nil
}

// failLocked fail-stops the journal with err (the first error sticks).
func (j *Journal) failLocked(err error) {
	if j.err == nil {
		j.err = err
		j.stats.Err = err
		j.log.Warn("cluster: journal stopped", "err", err)
	}
}

// notifier takes acknowledgements in seq order (see Journal).
func (j *Journal) notifier() {
	defer close(j.done)
	for {
		j.mu.Lock()
		var p *pending
		if len(j.queue) > 0 {
			p = j.queue[0]
		}
		closed := j.closed
		j.mu.Unlock()
		if p == nil {
			if closed {
				return
			}
			select {
			case <-j.wake:
			case <-j.closing:
			}
			continue
		}
		err := p.pubErr
		if p.fut != nil {
			t := time.NewTimer(j.cfg.AckTimeout + time.Second) // in case the client's own timeout never fires
			select {
			case ack := <-p.fut.Ok():
				if ack.Sequence != p.seq {
					err = fmt.Errorf("%w: record for seq %d acknowledged at seq %d", ErrFailed, p.seq, ack.Sequence)
				}
			case err = <-p.fut.Err():
			case <-t.C:
				err = jetstream.ErrAsyncPublishTimeout
			}
			t.Stop()
		}
		switch {
		case err == nil:
			j.complete(p, nil)
		case errors.Is(err, ErrFailed):
			j.failAll(err)
		default:
			// Even a "wrong last sequence" is no proof of a new owner: a
			// new stream leader answers it for records its predecessor
			// had not committed yet. The stream's content decides.
			j.log.Warn("cluster: journal append failed, settling pending records", "seq", p.seq, "err", err)
			j.settle()
		}
	}
}

// complete pops p (the queue head) and calls its done.
func (j *Journal) complete(p *pending, err error) {
	j.mu.Lock()
	j.queue = j.queue[1:]
	if err == nil {
		j.stats.Acked++
	} else {
		j.stats.Failed++
	}
	j.mu.Unlock()
	if p.done != nil {
		p.done(p.seq, err)
	}
	<-j.slots
}

// failAll fail-stops the journal and fails every pending record.
func (j *Journal) failAll(err error) {
	j.mu.Lock()
	j.failLocked(err)
	q := j.queue
	j.mu.Unlock()
	for _, p := range q {
		j.complete(p, err)
	}
}

// settle resolves every pending record after a failure whose outcome is
// unknown, holding off new appends meanwhile (see Journal).
func (j *Journal) settle() {
	select {
	case j.sem <- struct{}{}:
		defer func() { <-j.sem }()
	case <-j.closing:
		// Close holds the write lock and waits for the queue: settle
		// without it (nothing is appended after closing).
	}
	deadline := time.Now().Add(j.cfg.RetryTimeout)
	j.mu.Lock()
	q := j.queue
	j.mu.Unlock()
	attempt := 0
	for i := 0; i < len(q); {
		p := q[i]
		if err := j.cfg.Lease.Err(); err != nil && !j.ignoreLease {
			j.failAll(err)
			return
		}
		if time.Now().After(deadline) {
			j.failAll(fmt.Errorf("%w: journal %s: record seq %d not settled within %v", ErrFailed, j.name, p.seq, j.cfg.RetryTimeout))
			return
		}
		ok, err := j.settleOne(p)
		switch {
		case err != nil && (errors.Is(err, ErrFenced) || errors.Is(err, ErrFailed)):
			j.failAll(err)
			return
		case err != nil:
			j.log.Debug("cluster: journal settle retry", "seq", p.seq, "err", err)
			time.Sleep(backoff(attempt))
			attempt++
		case ok:
			j.complete(p, nil)
			i++
			attempt = 0
		}
	}
}

// settleOne finds out whether p is stored at its seq (ok), stores it if its
// seq is still free, or reports a permanent error (ErrFenced, ErrFailed)
// or a transient one (retry).
func (j *Journal) settleOne(p *pending) (ok bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.AckTimeout)
	defer cancel()
	info, err := j.stream.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.State.LastSeq >= p.seq {
		m, err := j.stream.GetMsg(ctx, p.seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("%w: journal %s: pending seq %d was purged", ErrFailed, j.name, p.seq)
		}
		if err != nil {
			return false, err
		}
		if !bytes.Equal(m.Data, p.data) {
			return false, fmt.Errorf("%w: journal %s: seq %d holds another writer's record (epoch %d superseded)", ErrFenced, j.name, p.seq, j.epoch)
		}
		return true, nil
	}
	if info.State.LastSeq != p.seq-1 {
		return false, fmt.Errorf("%w: journal %s ends at %d below pending seq %d", ErrFailed, j.name, info.State.LastSeq, p.seq)
	}
	ack, err := j.js.PublishMsg(ctx, &nats.Msg{Subject: j.subject, Data: p.data}, p.publishOpts()...)
	if err != nil {
		return false, err // wrong last seq included: read again
	}
	if ack.Sequence != p.seq {
		return false, fmt.Errorf("%w: record for seq %d stored at seq %d", ErrFailed, p.seq, ack.Sequence)
	}
	return true, nil
}

// Replay calls fn for every input record with Seq > after, in order, as far
// as the stream reached when Replay started (fence records are checked, not
// passed on). Every record is verified first: its CRC, its partition, its
// position, and that epochs never go backwards and only change at a fence.
// A record that fails is refused with an error wrapping ErrCorrupt that names
// the stream and the sequence, and fn never sees it. The Record's Payload is
// valid only during fn.
func (j *Journal) Replay(ctx context.Context, after uint64, fn func(*journal.Record) error) error {
	return replay(ctx, j.stream, j.name, j.subject, j.token, after, fn)
}

// replayIdle bounds the wait for the next record of a replay. The ordered
// consumer itself starts a lost pull again (from the next record) once
// 2 × replayHeartbeat pass without a heartbeat — its consumer vanishes when
// the stream's leader moves, and the default heartbeat of 5 s left a
// takeover waiting 10 s for that —, so replayIdle is only the backstop.
const (
	replayIdle      = 10 * time.Second
	replayHeartbeat = time.Second
)

func replay(ctx context.Context, stream jetstream.Stream, name, subject, token string, after uint64, fn func(*journal.Record) error) error {
	info, err := streamInfo(ctx, stream)
	if err != nil {
		return fmt.Errorf("cluster: replay %s: %w", name, err)
	}
	last, first := info.State.LastSeq, info.State.FirstSeq
	if last <= after {
		return nil
	}
	if info.State.Msgs == 0 || first > after+1 {
		return fmt.Errorf("%w: replay of %s after seq %d, but the stream starts at %d", ErrReleased, name, after, first)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err != nil {
		return fmt.Errorf("cluster: replay %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullExpiry(3*replayHeartbeat), jetstream.PullHeartbeat(replayHeartbeat))
	if err != nil {
		return fmt.Errorf("cluster: replay %s: %w", name, err)
	}
	defer it.Stop()
	var epoch uint64
	for {
		// Records up to last exist: a pull that brings nothing for
		// replayIdle is stuck, and failing lets the takeover start over
		// instead of hanging.
		nctx, cancel := context.WithTimeout(ctx, replayIdle)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: replay %s: %w", name, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("cluster: replay %s: %w", name, err)
		}
		seq := meta.Sequence.Stream
		f, err := decodeFrame(m.Data())
		if err != nil {
			return &CorruptError{Stream: name, Seq: seq, Reason: err.Error()}
		}
		switch {
		case f.token != token:
			return &CorruptError{Stream: name, Seq: seq, Reason: fmt.Sprintf("record of partition %q", f.token)}
		case f.seq != seq:
			return &CorruptError{Stream: name, Seq: seq, Reason: fmt.Sprintf("record written for seq %d", f.seq)}
		case f.epoch < epoch:
			return &CorruptError{Stream: name, Seq: seq, Reason: fmt.Sprintf("epoch %d after epoch %d (two owners interleaved)", f.epoch, epoch)}
		case f.epoch > epoch && epoch != 0 && !f.fence:
			return &CorruptError{Stream: name, Seq: seq, Reason: fmt.Sprintf("epoch %d starts without a fence after epoch %d", f.epoch, epoch)}
		}
		epoch = f.epoch
		if !f.fence {
			if err := fn(&f.rec); err != nil {
				return err
			}
		}
		if seq >= last {
			return nil
		}
	}
}

// CorruptError describes a journal record refused by Replay. It wraps
// ErrCorrupt.
type CorruptError struct {
	Stream string
	Seq    uint64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cluster: corrupt record in stream %s at seq %d: %s", e.Stream, e.Seq, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Release purges the records with Seq <= upTo (covered by a checkpoint).
// It never purges records not yet acknowledged.
func (j *Journal) Release(upTo uint64) error {
	j.mu.Lock()
	acked := j.next - 1 - uint64(len(j.queue))
	j.mu.Unlock()
	// Keep the last acknowledged record: after a restart the server takes
	// the last message's id as the stream's last msg id, which the next
	// append's condition names.
	if acked < 2 {
		return nil
	}
	upTo = min(upTo, acked-1)
	if upTo == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.AckTimeout)
	defer cancel()
	if err := j.stream.Purge(ctx, jetstream.WithPurgeSequence(upTo+1)); err != nil {
		return fmt.Errorf("cluster: release %s up to %d: %w", j.name, upTo, err)
	}
	return nil
}

// LastSeq is the last seq handed out by Append (or the fence's after Open).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Epoch is the epoch this journal writes.
func (j *Journal) Epoch() uint64 { return j.epoch }

// Stats returns a snapshot: Appended, Acked, Failed, LastSeq, Pending and
// Err (non-nil once fenced or failed).
func (j *Journal) Stats() journal.Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.LastSeq = j.next - 1
	s.Pending = len(j.queue)
	return s
}

// Close stops accepting appends and waits until every pending record is
// settled and its done called. It does not release the lease. Safe to call
// twice.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		close(j.closing)    // Appends waiting for room or the write lock give up
		j.sem <- struct{}{} // an Append publishing now finishes enqueueing
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		select {
		case j.wake <- struct{}{}:
		default:
		}
		<-j.done
	})
	return j.closeErr
}
