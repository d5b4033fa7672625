package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/checkpoint"
)

// MaxCheckpointSize bounds the Data of one checkpoint. Values go to a
// JetStream object store (chunked by NATS, so well over the 1 MiB message
// limit), but Save and Load hold the whole value in memory.
const MaxCheckpointSize = 64 << 20

// CheckpointConfig configures OpenCheckpoints.
type CheckpointConfig struct {
	// Cluster is the cluster name (prefix of the bucket name). Required.
	Cluster string
	// Replicas of the object store bucket: 3 on a 3-server cluster. Default 1.
	Replicas int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the config is usable (after defaults).
func (c CheckpointConfig) Validate() error {
	if err := validName(c.Cluster); err != nil {
		return err
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("%w: checkpoint Replicas %d not in 1..5", ErrInvalidConfig, c.Replicas)
	}
	return nil
}

// Checkpoints is a checkpoint.Store on the JetStream object store bucket
// CheckpointBucket(cluster), shared by the cluster's partitions (keys are
// service addresses, unique cluster-wide).
//
// The object store rather than KV: checkpoints of a busy room grow past the
// 1 MiB KV value limit, and the object store chunks values of any size.
// A Put publishes the chunks first and the object's metadata last (one
// message that replaces the previous one), so a Save is atomic: Load sees
// the old value or the new one. Every value is framed with our own CRC-32C
// (see encodeCheckpoint) in addition to the store's SHA-256 digest, so a
// flipped bit is refused on Load with checkpoint.ErrCorrupt.
//
// A Load racing a Save of the same key may fail (the old chunks are purged
// after the new metadata lands); the runtime never does both at once for
// one key.
type Checkpoints struct {
	obs    jetstream.ObjectStore
	bucket string
	log    *slog.Logger
}

var _ checkpoint.Store = (*Checkpoints)(nil)

// OpenCheckpoints creates the bucket if needed (file storage) or binds to it.
func OpenCheckpoints(ctx context.Context, js jetstream.JetStream, cfg CheckpointConfig) (*Checkpoints, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	name := CheckpointBucket(cfg.Cluster)
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      name,
		Description: "reactor checkpoints",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		obs, err = js.ObjectStore(ctx, name)
	}
	if err == nil {
		obs, err = leaderReads(ctx, js, name, obs)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open checkpoint bucket %s: %w", name, err)
	}
	return &Checkpoints{obs: obs, bucket: name, log: cfg.Logger}, nil
}

// leaderReads turns off direct gets on the bucket's stream and binds to it
// again. An object store reads an object's metadata with a direct get,
// which any replica may answer, a follower from before the last write
// included: a node taking a partition over could then load the checkpoint
// its previous owner replaced — or miss one just written — after the
// journal records it covered were released. Without direct gets the
// stream's leader answers, which holds every acknowledged write.
func leaderReads(ctx context.Context, js jetstream.JetStream, bucket string, obs jetstream.ObjectStore) (jetstream.ObjectStore, error) {
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return nil, err
	}
	cfg := st.CachedInfo().Config
	if !cfg.AllowDirect {
		return obs, nil
	}
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return nil, err
	}
	return js.ObjectStore(ctx, bucket) // its stream handle caches the new config
}

// Checkpoint value framing (little-endian):
//
//	0  magic "RCK1"
//	4  seq uint64
//	12 length uint64 of data
//	20 data
//	.. crc uint32  CRC-32C of every byte before it
const (
	ckptMagic  = "RCK1"
	ckptHeader = 20
)

func encodeCheckpoint(cp checkpoint.Checkpoint) []byte {
	b := make([]byte, ckptHeader+len(cp.Data)+4)
	copy(b, ckptMagic)
	binary.LittleEndian.PutUint64(b[4:], cp.Seq)
	binary.LittleEndian.PutUint64(b[12:], uint64(len(cp.Data)))
	n := copy(b[ckptHeader:], cp.Data) + ckptHeader
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

func decodeCheckpoint(b []byte) (checkpoint.Checkpoint, error) {
	if len(b) < ckptHeader+4 || string(b[:4]) != ckptMagic {
		return checkpoint.Checkpoint{}, errors.New("not a checkpoint frame")
	}
	n := len(b) - 4
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return checkpoint.Checkpoint{}, errFrameCRC
	}
	if binary.LittleEndian.Uint64(b[12:]) != uint64(n-ckptHeader) {
		return checkpoint.Checkpoint{}, errFrameLength
	}
	cp := checkpoint.Checkpoint{Seq: binary.LittleEndian.Uint64(b[4:])}
	if n > ckptHeader {
		cp.Data = b[ckptHeader:n:n]
	}
	return cp, nil
}

// Save stores cp under key, replacing what was there atomically.
func (s *Checkpoints) Save(ctx context.Context, key string, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%w: empty checkpoint key", ErrInvalidConfig)
	}
	if len(cp.Data) > MaxCheckpointSize {
		return fmt.Errorf("%w: checkpoint of %d bytes for %q (max %d)", ErrTooLarge, len(cp.Data), key, MaxCheckpointSize)
	}
	if _, err := s.obs.PutBytes(ctx, key, encodeCheckpoint(cp)); err != nil {
		return fmt.Errorf("cluster: save checkpoint %q: %w", key, err)
	}
	return nil
}

// Load returns the checkpoint under key, checkpoint.ErrNotFound, or an
// error wrapping checkpoint.ErrCorrupt (and ErrCorrupt) when the stored
// value fails its checksum.
func (s *Checkpoints) Load(ctx context.Context, key string) (checkpoint.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return checkpoint.Checkpoint{}, err
	}
	// A lost answer (a leader that just died: see stepTimeout) is tried
	// again; a large value may take longer than a step, so each try may
	// take twice as long as the one before.
	var b []byte
	err := retryingSteps(ctx, true, func(ctx context.Context) (err error) {
		b, err = s.obs.GetBytes(ctx, key)
		return err
	})
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return checkpoint.Checkpoint{}, fmt.Errorf("%w: %w: checkpoint %q in %s: %w", checkpoint.ErrCorrupt, ErrCorrupt, key, s.bucket, err)
		}
		return checkpoint.Checkpoint{}, fmt.Errorf("cluster: load checkpoint %q: %w", key, err)
	}
	cp, err := decodeCheckpoint(b)
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("%w: %w: checkpoint %q in %s: %w", checkpoint.ErrCorrupt, ErrCorrupt, key, s.bucket, err)
	}
	return cp, nil
}

// Delete removes key's checkpoint; a missing key is not an error.
func (s *Checkpoints) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.obs.Delete(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("cluster: delete checkpoint %q: %w", key, err)
	}
	return nil
}

// Keys lists every key with a checkpoint.
func (s *Checkpoints) Keys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	infos, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: list checkpoints: %w", err)
	}
	keys := make([]string, 0, len(infos))
	for _, i := range infos {
		keys = append(keys, i.Name)
	}
	return keys, nil
}
