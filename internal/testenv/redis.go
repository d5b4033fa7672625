package testenv

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Redis returns a client of the test Redis (RedisURL) that answered PING,
// closed when t ends; without one it skips t (fails it when Required).
func Redis(t testing.TB) *goredis.Client {
	t.Helper()
	o, err := goredis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("REACTOR_TEST_REDIS: %v", err)
	}
	c := goredis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		Missing(t, "Redis at %s does not answer PING (%v): start it to run this test", o.Addr, err)
	}
	return c
}

// DeleteRedisKeys deletes every key starting with prefix when t ends, so
// tests sharing one Redis leave nothing behind.
func DeleteRedisKeys(t testing.TB, c *goredis.Client, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
}
