// Package jobs is a durable job queue built as reactor services: each queue
// is a journaled service (its state in memory, made durable by the journal
// and checkpoints), and in-process worker pools lease jobs from it.
//
// A kind is defined once, typed, like a reactor.Method:
//
//	type Welcome struct{ User string }
//
//	var SendWelcome = jobs.Define("email.welcome", func(ctx context.Context, j *jobs.Job[Welcome]) error {
//		return mailer.Send(ctx, j.Args.User, "welcome")
//	}, jobs.MaxAttempts(5))
//
//	qs, _ := jobs.New(rt, jobs.Config{Queues: map[string]jobs.QueueConfig{"default": {Workers: 8}}})
//	rt.Start(ctx)
//	qs.Start(ctx)
//	id, err := SendWelcome.Enqueue(ctx, qs, Welcome{User: "ann"}, jobs.Delay(time.Minute))
//
// Enqueue from outside returns once the job is in the fsynced journal.
// Called with a journaled handler's *reactor.Ctx it is EnqueueTx: the job
// exists if and only if the handler's input is durable (the enqueue is a
// send from the handler, delivered exactly once between journaled services).
//
// Execution is at least once. A leased job carries a fencing token; its
// worker heartbeats to keep the lease; when the lease's deadline passes the
// job is runnable again with a higher token, and the old worker's late
// heartbeat, completion or failure is rejected with ErrStaleLease. A failed
// attempt is retried after an exponential backoff with full jitter; out of
// attempts (or failing with Permanent) the job is dead-lettered, where Dead,
// Redrive and Purge find it. A queue holds at most MaxDepth pending and
// running jobs: beyond it Enqueue fails with a *BusyError, which wraps
// reactor.ErrBusy and advises a retry delay from the queue's drain rate
// (Little's law).
//
// Kind.Schedule makes a kind periodic (cron syntax); the schedule is
// journaled state and each tick's job is enqueued exactly once. RateLimit
// limits how fast a process starts a kind's jobs; QueueConfig.MaxRunning
// caps a queue's running jobs across all workers. Remote workers use
// LeaseWait (long poll) through jobs/jobshttp; jobs/natsq and jobs/amqp
// deliver broker messages into services, jobs/outbox publishes to brokers
// with output commit, jobs/jobsmetrics exports Stats to Prometheus.
//
// Time comes from the queue's reactor.Ctx.Now (reactor.Config.Clock), so a
// replay of the journal reproduces every lease deadline and backoff, and
// tests move time with a fake clock. See docs/JOBS.md for the guarantees.
package jobs
