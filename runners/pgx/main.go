// Command pgx-runner runs one ibcbench workload job on pgx v4's pgxpool.
//
// It reads the job (JSON) on stdin, runs its client goroutines over one pool (closed loop, or
// open loop on each client's own schedule) and writes one JSON line per measured request to the
// job's "out" file: query index, client, scheduled start, start (the first try's send), got (the
// last try's connection), end, ok, tries and the error text, times in seconds from the measured
// window's start. Its last line on stdout is the run's figures (JSON). The password never comes on
// the command line or in the job: pgconn reads it from PGPASSFILE (or the conninfo's passfile).
// A failure before the run prints one line on stderr and exits 2.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4/pgxpool"
)

type query struct {
	Name   string      `json:"name"`
	SQL    string      `json:"sql"`
	Write  bool        `json:"write"`
	Params [][]*string `json:"params"`
}

type poolSettings struct {
	MaxConns          int32    `json:"max_conns"`
	MinConns          int32    `json:"min_conns"`
	MaxConnLifetimeS  float64  `json:"max_conn_lifetime_s"`
	MaxConnIdleTimeS  float64  `json:"max_conn_idle_time_s"`
	HealthCheckPeriod *float64 `json:"health_check_period_s"`
}

type clientDraws struct {
	Picks  []int   `json:"picks"`
	Slots  []int   `json:"slots"`
	Offset float64 `json:"offset"` // open loop: the first request's start, in intervals
}

type job struct {
	Conninfo       string        `json:"conninfo"`
	Queries        []query       `json:"queries"`
	Clients        int           `json:"clients"`
	DurationS      float64       `json:"duration_s"`
	WarmupS        float64       `json:"warmup_s"`
	RateQPS        *float64      `json:"rate_qps"`
	DrainS         float64       `json:"drain_s"`
	MaxTries       int           `json:"max_tries"`
	PoolTimeoutS   float64       `json:"pool_timeout_s"`
	Pool           poolSettings  `json:"pool"`
	StatementCache int           `json:"statement_cache"` // capacity; 0: simple protocol
	Draws          []clientDraws `json:"draws"`
	FloorS         float64       `json:"floor_s"`
	Out            string        `json:"out"`
}

type record struct {
	Query  int     `json:"q"`
	Client int     `json:"c"`
	Sched  float64 `json:"sched"`
	Start  float64 `json:"start"`
	Got    float64 `json:"got"`
	End    float64 `json:"end"`
	OK     bool    `json:"ok"`
	Tries  int     `json:"tries"`
	Error  string  `json:"err,omitempty"`
}

type figures struct {
	NotIssued      int              `json:"not_issued"`
	CPUUsedS       float64          `json:"cpu_used_s"`
	WindowEpochS   float64          `json:"window_epoch_s"`
	FloorQPS       *float64         `json:"floor_qps"`
	PoolStats      map[string]int64 `json:"pool_stats"`
	Records        int              `json:"records"`
	ServerVersion  string           `json:"server_version"`
	StatementCache string           `json:"statement_cache"`
}

type window struct {
	start, measureFrom, stopAt, drainUntil, retryUntil time.Time
}

func fail(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, strings.SplitN(msg, "\n", 2)[0])
	os.Exit(2)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func check(j *job) error {
	switch {
	case j.Clients < 1 || j.DurationS <= 0 || j.WarmupS < 0:
		return errors.New("clients must be >= 1, duration_s > 0 and warmup_s >= 0")
	case len(j.Queries) == 0:
		return errors.New("the job has no queries")
	case len(j.Draws) != j.Clients:
		return fmt.Errorf("the job has %d clients but draws for %d", j.Clients, len(j.Draws))
	case j.MaxTries < 1:
		return errors.New("max_tries must be at least 1")
	case j.Out == "":
		return errors.New("the job names no output file")
	}
	for _, q := range j.Queries {
		if len(q.Params) == 0 {
			return fmt.Errorf("query %q has no parameter sets", q.Name)
		}
	}
	for i, d := range j.Draws {
		if len(d.Picks) == 0 || len(d.Picks) != len(d.Slots) {
			return fmt.Errorf("client %d: picks and slots must be non-empty and as long", i)
		}
		for _, p := range d.Picks {
			if p < 0 || p >= len(j.Queries) {
				return fmt.Errorf("client %d draws query %d of %d", i, p, len(j.Queries))
			}
		}
	}
	return nil
}

func openPool(j *job) (*pgxpool.Pool, error) {
	extra := " statement_cache_capacity=0 prefer_simple_protocol=true"
	if j.StatementCache > 0 {
		extra = fmt.Sprintf(" statement_cache_capacity=%d statement_cache_mode=prepare", j.StatementCache)
	}
	cfg, err := pgxpool.ParseConfig(j.Conninfo + extra)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = j.Pool.MaxConns, j.Pool.MinConns
	cfg.MaxConnLifetime = seconds(j.Pool.MaxConnLifetimeS)
	cfg.MaxConnIdleTime = seconds(j.Pool.MaxConnIdleTimeS)
	// pgxpool v4 has no "off": a period of a day stands for none
	cfg.HealthCheckPeriod = 24 * time.Hour
	if j.Pool.HealthCheckPeriod != nil {
		cfg.HealthCheckPeriod = seconds(*j.Pool.HealthCheckPeriod)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "ibcbench-pgx"
	ctx, cancel := context.WithTimeout(context.Background(), seconds(j.PoolTimeoutS))
	defer cancel()
	return pgxpool.ConnectConfig(ctx, cfg)
}

// retryable: a lost, refused or timed-out connection, a serialization failure or a deadlock; not
// a cancelled statement or an error in the query itself (as the Python runner's tries.retryable).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return c == "40001" || c == "40P01" || strings.HasPrefix(c, "08") ||
			strings.HasPrefix(c, "57P") || strings.HasPrefix(c, "53")
	}
	return true // network, EOF, the acquire's deadline: the connection went or never came
}

type runner struct {
	j    *job
	pool *pgxpool.Pool
	w    window
}

// once sends one try; the connection it got, and its error.
func (r *runner) once(q *query, args []interface{}) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), seconds(r.j.PoolTimeoutS))
	conn, err := r.pool.Acquire(ctx)
	cancel()
	got := time.Now()
	if err != nil {
		return got, err
	}
	defer conn.Release()
	bg := context.Background()
	if q.Write {
		tx, err := conn.Begin(bg)
		if err != nil {
			return got, err
		}
		_, err = tx.Exec(bg, q.SQL, args...)
		rbErr := tx.Rollback(bg)
		if err == nil {
			err = rbErr
		}
		return got, err
	}
	rows, err := conn.Query(bg, q.SQL, args...)
	if err != nil {
		return got, err
	}
	for rows.Next() {
	}
	rows.Close()
	return got, rows.Err()
}

// request tries one request up to max_tries times; none starts after retryUntil.
func (r *runner) request(q *query, args []interface{}) (rec record, got, done time.Time) {
	for {
		rec.Tries++
		var err error
		got, err = r.once(q, args)
		done = time.Now()
		if err == nil {
			rec.OK = true
			return rec, got, done
		}
		if rec.Tries >= r.j.MaxTries || !retryable(err) || !done.Before(r.w.retryUntil) {
			rec.Error = strings.SplitN(err.Error(), "\n", 2)[0]
			return rec, got, done
		}
	}
}

func (r *runner) client(idx int, out chan<- record, notIssued *int) {
	d := r.j.Draws[idx]
	w := r.w
	args := make([][][]interface{}, len(r.j.Queries))
	for i, q := range r.j.Queries {
		for _, set := range q.Params {
			values := make([]interface{}, len(set))
			for k, v := range set {
				if v != nil {
					values[k] = *v
				}
			}
			args[i] = append(args[i], values)
		}
	}
	var interval time.Duration
	if r.j.RateQPS != nil {
		interval = seconds(float64(r.j.Clients) / *r.j.RateQPS)
	}
	scheduled := w.start.Add(time.Duration(d.Offset * float64(interval)))
	rel := func(t time.Time) float64 { return t.Sub(w.measureFrom).Seconds() }
	for k := 0; ; k++ {
		now := time.Now()
		var began time.Time
		if interval > 0 {
			if !scheduled.Before(w.stopAt) {
				return
			}
			if !now.Before(w.drainUntil) {
				first := scheduled
				if first.Before(w.measureFrom) {
					first = w.measureFrom
				}
				left := w.stopAt.Sub(first)
				*notIssued = int((left + interval - 1) / interval)
				return
			}
			if scheduled.After(now) {
				time.Sleep(scheduled.Sub(now))
			}
			began = scheduled
			scheduled = scheduled.Add(interval)
		} else if !now.Before(w.stopAt) {
			return
		} else {
			began = now
		}
		i := d.Picks[k%len(d.Picks)]
		values := args[i][d.Slots[k%len(d.Slots)]%len(args[i])]
		sent := time.Now()
		if interval == 0 {
			sent = began
		}
		rec, got, done := r.request(&r.j.Queries[i], values)
		troubled := !rec.OK || rec.Tries > 1
		if began.Before(w.measureFrom) || !(interval > 0 || !done.After(w.stopAt) || troubled) {
			continue
		}
		rec.Query, rec.Client = i, idx
		rec.Sched, rec.Start, rec.Got, rec.End = rel(began), rel(sent), rel(got), rel(done)
		out <- rec
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func poolStats(p *pgxpool.Pool) map[string]int64 {
	s := p.Stat()
	return map[string]int64{
		"acquire_count":          s.AcquireCount(),
		"acquire_ms":             s.AcquireDuration().Milliseconds(),
		"empty_acquire_count":    s.EmptyAcquireCount(),
		"canceled_acquire_count": s.CanceledAcquireCount(),
		"total_conns":            int64(s.TotalConns()),
		"idle_conns":             int64(s.IdleConns()),
		"max_conns":              int64(s.MaxConns()),
	}
}

// floor: SELECT 1 per second through the same pool and clients (the client's round-trip floor).
func floor(p *pgxpool.Pool, clients int, d time.Duration) float64 {
	var wg sync.WaitGroup
	counts := make([]int, clients)
	started := time.Now()
	stop := started.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var one int
			for time.Now().Before(stop) {
				if p.QueryRow(context.Background(), "SELECT 1").Scan(&one) != nil {
					return
				}
				counts[c]++
			}
		}(c)
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	return float64(total) / time.Since(started).Seconds()
}

func main() {
	var j job
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		fail("pgx runner: the job on stdin is not valid JSON: %v", err)
	}
	if err := check(&j); err != nil {
		fail("pgx runner: %v", err)
	}
	file, err := os.OpenFile(j.Out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fail("pgx runner: cannot create its records file: %v", err)
	}
	pool, err := openPool(&j)
	if err != nil {
		fail("pgx runner: the pool could not open its connections within %gs: %v", j.PoolTimeoutS, err)
	}
	defer pool.Close()
	var version string
	_ = pool.QueryRow(context.Background(), "SHOW server_version").Scan(&version)

	start := time.Now()
	w := window{start: start, measureFrom: start.Add(seconds(j.WarmupS))}
	w.stopAt = w.measureFrom.Add(seconds(j.DurationS))
	w.drainUntil = w.stopAt.Add(seconds(j.DrainS))
	w.retryUntil = w.stopAt
	if j.RateQPS != nil {
		w.retryUntil = w.drainUntil
	}
	r := &runner{j: &j, pool: pool, w: w}
	out := make(chan record, 4096)
	notIssued := make([]int, j.Clients)
	var wg sync.WaitGroup
	for c := 0; c < j.Clients; c++ {
		wg.Add(1)
		go func(c int) { defer wg.Done(); r.client(c, out, &notIssued[c]) }(c)
	}
	var cpuAtStart float64
	var statsAtStart map[string]int64
	marker := make(chan struct{})
	go func() {
		time.Sleep(time.Until(w.measureFrom))
		cpuAtStart, statsAtStart = cpuSeconds(), poolStats(pool)
		close(marker)
	}()
	go func() { wg.Wait(); close(out) }()
	buf := bufio.NewWriter(file)
	enc := json.NewEncoder(buf)
	n, disturbed := 0, false
	for rec := range out {
		if err := enc.Encode(rec); err != nil {
			fail("pgx runner: cannot write its records: %v", err)
		}
		n++
		disturbed = disturbed || !rec.OK || rec.Tries > 1
	}
	<-marker
	fig := figures{
		CPUUsedS:       cpuSeconds() - cpuAtStart,
		WindowEpochS:   float64(start.UnixNano())/1e9 + j.WarmupS,
		Records:        n,
		ServerVersion:  version,
		StatementCache: "simple protocol",
	}
	if j.StatementCache > 0 {
		fig.StatementCache = fmt.Sprintf("prepare, capacity %d", j.StatementCache)
	}
	for _, v := range notIssued {
		fig.NotIssued += v
	}
	stats := poolStats(pool)
	for _, key := range []string{"acquire_count", "acquire_ms", "empty_acquire_count", "canceled_acquire_count"} {
		stats[key] -= statsAtStart[key]
	}
	fig.PoolStats = stats
	if err := buf.Flush(); err != nil {
		fail("pgx runner: cannot write its records: %v", err)
	}
	if err := file.Close(); err != nil {
		fail("pgx runner: cannot write its records: %v", err)
	}
	if j.RateQPS == nil && !disturbed && j.FloorS > 0 {
		q := floor(pool, j.Clients, seconds(j.FloorS))
		fig.FloorQPS = &q
	}
	if err := json.NewEncoder(os.Stdout).Encode(fig); err != nil {
		fail("pgx runner: %v", err)
	}
}
