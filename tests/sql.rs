//! `minipaas sql` against a real PostgreSQL: queues that lose nothing when workers die, streams
//! whose consumers never skip a late-committing event, the original's calls unchanged, and the
//! migrate command through the binary.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::common::pg::TestDb;

fn minipaas(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_minipaas"))
        .arg("sql")
        .arg("--database-url")
        .arg(db.url())
        .args(args)
        .output()
        .expect("minipaas runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).expect(sql).get(0)
}

#[test]
fn sql_queue_100k_jobs_16_workers_a_quarter_dying_mid_job() {
    const JOBS: usize = 100_000;
    let db = TestDb::new("q100k");
    db.install();
    let mut c = db.client();
    c.batch_execute(
        "SELECT minipaas_queue_create('jobs');
         SELECT minipaas_queue_configure('jobs', max_attempts => 1000, lease_seconds => 1.5);",
    )
    .unwrap();
    let started = Instant::now();
    for chunk in (1..=JOBS).collect::<Vec<_>>().chunks(5000) {
        let payloads: Vec<String> = chunk.iter().map(|n| format!("{{\"n\":{n}}}")).collect();
        let json = format!("[{}]", payloads.join(","));
        c.execute(
            "SELECT minipaas_queue_enqueue_many('jobs', $1::text::jsonb)",
            &[&json],
        )
        .unwrap();
    }
    let enqueued = started.elapsed();

    let acks: Arc<Vec<AtomicU32>> = Arc::new((0..=JOBS).map(|_| AtomicU32::new(0)).collect());
    let deaths = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (acks, deaths, name) = (acks.clone(), deaths.clone(), db.name.clone());
            thread::spawn(move || {
                let killer = w < 4;
                let mut client = crate::common::pg::connect_to(&name);
                let mut batch_no = 0u64;
                let deadline = Instant::now() + Duration::from_secs(240);
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "worker {w} never saw the queue drain"
                    );
                    let rows = client
                        .query(
                            "SELECT id, lease::text FROM minipaas_queue_lease('jobs', 50)",
                            &[],
                        )
                        .unwrap();
                    if rows.is_empty() {
                        let left = count(
                            &mut client,
                            "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')",
                        );
                        if left == 0 {
                            return;
                        }
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                    let lease: String = rows[0].get(1);
                    batch_no += 1;
                    // A dying worker finishes half its batch, then its connection is gone.
                    let (now, rest) = if killer && batch_no % 3 == 0 {
                        ids.split_at(ids.len() / 2)
                    } else {
                        (&ids[..], &[][..])
                    };
                    let acked = client
                        .query(
                            "SELECT * FROM minipaas_queue_ack('jobs', $1, $2::text::uuid)",
                            &[&now, &lease],
                        )
                        .unwrap();
                    for r in acked {
                        let id: i64 = r.get(0);
                        acks[id as usize].fetch_add(1, Ordering::SeqCst);
                    }
                    if !rest.is_empty() {
                        deaths.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                        client = crate::common::pg::connect_to(&name);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = started.elapsed();

    let wrong: Vec<(usize, u32)> = (1..=JOBS)
        .map(|i| (i, acks[i].load(Ordering::SeqCst)))
        .filter(|(_, n)| *n != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "jobs not acked exactly once (id, acks): {wrong:?}"
    );
    let row = c
        .query_one(
            "SELECT length, in_flight, done, dead FROM minipaas_queue_stats('jobs')",
            &[],
        )
        .unwrap();
    let (length, in_flight, done, dead): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((length, in_flight, done, dead), (0, 0, JOBS as i64, 0));
    let deliveries = count(&mut c, "SELECT sum(attempts)::bigint FROM jobs");
    let died = deaths.load(Ordering::SeqCst);
    assert!(died > 10, "the dying workers died only {died} times");
    assert!(
        deliveries > JOBS as i64,
        "no job was delivered twice: the deaths stranded nothing to recover"
    );
    eprintln!(
        "100k jobs: enqueued in {enqueued:?}, all acked in {elapsed:?}; {died} worker deaths, {} redeliveries",
        deliveries - JOBS as i64
    );
}

#[test]
fn sql_queue_failing_jobs_go_to_the_dead_letter_and_come_back() {
    let db = TestDb::new("qdead");
    db.install();
    let mut c = db.client();
    c.batch_execute(
        "SELECT minipaas_queue_create('fails');
         SELECT minipaas_queue_configure('fails', max_attempts => 3, backoff_base_seconds => 0.05);
         SELECT minipaas_queue_enqueue_many('fails', (SELECT jsonb_agg(g) FROM generate_series(1, 200) g));",
    )
    .unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let name = db.name.clone();
            thread::spawn(move || {
                let mut c = crate::common::pg::connect_to(&name);
                let deadline = Instant::now() + Duration::from_secs(60);
                while count(&mut c, "SELECT dead FROM minipaas_queue_stats('fails')") < 200 {
                    assert!(Instant::now() < deadline, "jobs never all went dead");
                    let rows = c
                        .query("SELECT id, lease::text FROM minipaas_queue_lease('fails', 10)", &[])
                        .unwrap();
                    if rows.is_empty() {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                    let lease: String = rows[0].get(1);
                    c.query(
                        "SELECT * FROM minipaas_queue_nack('fails', $1, $2::text::uuid, 'handler failed')",
                        &[&ids, &lease],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let bad = count(
        &mut c,
        "SELECT count(*) FROM fails WHERE status <> 'dead' OR attempts <> 3 OR last_error <> 'handler failed'",
    );
    assert_eq!(bad, 0, "every job is dead after exactly 3 attempts");

    let out = minipaas(&db, &["queue", "stats", "fails", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats[0]["dead"], 200);
    assert_eq!(stats[0]["length"], 0);

    let out = minipaas(
        &db,
        &["queue", "retry-dead", "fails", "--id", "1", "--id", "2"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "retried 2 dead jobs of `fails`");
    let out = minipaas(&db, &["queue", "retry-dead", "fails"]);
    assert_eq!(text(&out.stdout).trim(), "retried 198 dead jobs of `fails`");
    assert_eq!(
        count(&mut c, "SELECT visible FROM minipaas_queue_stats('fails')"),
        200
    );
    assert_eq!(count(&mut c, "SELECT max(attempts)::bigint FROM fails"), 0);
    let out = minipaas(&db, &["queue", "stats"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("QUEUE  LENGTH  VISIBLE"), "{table}");
    assert!(table.contains("fails  200     200"), "{table}");
}

#[test]
fn sql_queue_leases_backoff_delays_priorities_and_retention() {
    let db = TestDb::new("qsem");
    db.install();
    let mut c = db.client();
    c.batch_execute(
        "SELECT minipaas_queue_create('q');
         SELECT minipaas_queue_configure('q', max_attempts => 2, backoff_base_seconds => 10, backoff_max_seconds => 15);",
    )
    .unwrap();
    let lease = |c: &mut postgres::Client, secs: f64| -> Vec<(i64, String, i32)> {
        c.query(
            "SELECT id, lease::text, attempts FROM minipaas_queue_lease('q', 10, $1)",
            &[&secs],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };
    // Acks the job under its lease; returns how many rows the ack took.
    let ack = |c: &mut postgres::Client, job: &(i64, String, i32)| -> usize {
        c.query(
            "SELECT * FROM minipaas_queue_ack('q', ARRAY[$1::bigint], $2::text::uuid)",
            &[&job.0, &job.1],
        )
        .unwrap()
        .len()
    };

    // priorities first, delayed jobs only when due
    c.batch_execute(
        "SELECT minipaas_queue_enqueue('q', '\"low\"');
         SELECT minipaas_queue_enqueue('q', '\"high\"', 5, NULL);
         SELECT minipaas_queue_enqueue('q', '\"later\"', 9, now() + interval '1 hour');",
    )
    .unwrap();
    let got: Vec<String> = c
        .query(
            "SELECT payload #>> '{}' FROM minipaas_queue_lease('q', 10, 60)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, ["high", "low"]);
    let delayed = count(&mut c, "SELECT delayed FROM minipaas_queue_stats('q')");
    assert_eq!(delayed, 1);
    c.batch_execute("SELECT minipaas_queue_purge('q', 'all')")
        .unwrap();

    // a lease that runs out makes the job visible again; the old lease can no longer ack it
    c.batch_execute("SELECT minipaas_queue_enqueue('q', '1')")
        .unwrap();
    let first = lease(&mut c, 0.3);
    assert_eq!(first.len(), 1);
    assert!(
        lease(&mut c, 0.3).is_empty(),
        "a held job is not handed out twice"
    );
    thread::sleep(Duration::from_millis(400));
    let second = lease(&mut c, 30.0);
    assert_eq!(
        (second[0].0, second[0].2),
        (first[0].0, 2),
        "redelivered, second attempt"
    );
    assert_eq!(
        ack(&mut c, &first[0]),
        0,
        "ack with a lost lease is refused"
    );
    // extend keeps it; nack on the last attempt dead-letters it
    let ext = c
        .query(
            "SELECT * FROM minipaas_queue_extend('q', ARRAY[$1::bigint], $2::text::uuid, 120)",
            &[&second[0].0, &second[0].1],
        )
        .unwrap();
    assert_eq!(ext.len(), 1);
    let st: String = c
        .query_one(
            "SELECT status FROM minipaas_queue_nack('q', ARRAY[$1::bigint], $2::text::uuid, 'boom')",
            &[&second[0].0, &second[0].1],
        )
        .unwrap()
        .get(0);
    assert_eq!(st, "dead");

    // exponential backoff: base * 2^(attempt-1), capped
    c.batch_execute("SELECT minipaas_queue_configure('q', max_attempts => 10)")
        .unwrap();
    c.batch_execute("SELECT minipaas_queue_enqueue('q', '2')")
        .unwrap();
    for (attempt, expect) in [(1, 10.0), (2, 15.0)] {
        // make the job due again without waiting for its backoff
        c.batch_execute("UPDATE q SET visible_at = now() WHERE status = 'pending'")
            .unwrap();
        let l = lease(&mut c, 30.0);
        assert_eq!(l[0].2, attempt);
        let delay: f64 = c
            .query_one(
                "SELECT extract(epoch FROM visible_at - now())::float8 FROM minipaas_queue_nack('q', ARRAY[$1::bigint], $2::text::uuid)",
                &[&l[0].0, &l[0].1],
            )
            .unwrap()
            .get(0);
        assert!(
            (delay - expect).abs() < 1.0,
            "attempt {attempt}: retry in {delay} s, want {expect}"
        );
    }

    // a worker dying on every attempt: the job goes dead when its last lease runs out
    c.batch_execute(
        "SELECT minipaas_queue_purge('q', 'all');
         SELECT minipaas_queue_configure('q', max_attempts => 2);
         SELECT minipaas_queue_enqueue('q', '3');",
    )
    .unwrap();
    for _ in 0..2 {
        assert_eq!(lease(&mut c, 0.1).len(), 1);
        thread::sleep(Duration::from_millis(150));
    }
    assert!(lease(&mut c, 0.1).is_empty());
    assert_eq!(
        count(&mut c, "SELECT dead FROM minipaas_queue_stats('q')"),
        1
    );

    // retention 0 deletes at ack; otherwise trimmed once past the retention
    c.batch_execute(
        "SELECT minipaas_queue_purge('q', 'all');
         SELECT minipaas_queue_configure('q', retention => '0');
         SELECT minipaas_queue_enqueue('q', '4');",
    )
    .unwrap();
    let l = lease(&mut c, 30.0);
    ack(&mut c, &l[0]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM q"), 0);
    c.batch_execute(
        "SELECT minipaas_queue_configure('q', retention => '1 hour');
         SELECT minipaas_queue_enqueue('q', '5');",
    )
    .unwrap();
    let l = lease(&mut c, 30.0);
    ack(&mut c, &l[0]);
    c.batch_execute("UPDATE q SET finished_at = now() - interval '2 hours'")
        .unwrap();
    assert!(lease(&mut c, 30.0).is_empty(), "an empty dequeue trims");
    assert_eq!(count(&mut c, "SELECT count(*) FROM q"), 0);
}

#[test]
fn sql_original_calls_work_unchanged() {
    let db = TestDb::new("legacy");
    db.install();
    let mut c = db.client();
    let mut listener = db.client();
    listener.batch_execute("LISTEN emails").unwrap();

    // as the original's example workers call them
    c.batch_execute("SELECT minipaas_queue_create('emails')")
        .unwrap();
    c.batch_execute("SELECT minipaas_queue_create('emails')")
        .unwrap();
    let row = c
        .query_one(
            "SELECT id, payload, status, created_at FROM minipaas_queue_enqueue('emails', '{\"to\": \"a@example.org\"}'::jsonb)",
            &[],
        )
        .unwrap();
    let (id, status): (i64, String) = (row.get(0), row.get(2));
    assert_eq!((id, status.as_str()), (1, "pending"));
    c.batch_execute(
        "SELECT * FROM minipaas_queue_enqueue('emails', '{\"to\": \"b@example.org\"}')",
    )
    .unwrap();
    let got = c
        .query(
            "SELECT id, payload, status, created_at FROM minipaas_queue_dequeue('emails', 10)",
            &[],
        )
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.get::<_, String>(2) == "processing"));
    let acked: i64 = c
        .query_one("SELECT minipaas_queue_ack('emails', '{1}'::int[])", &[])
        .unwrap()
        .get(0);
    assert_eq!(acked, 1);
    let acked: i64 = c
        .query_one("SELECT minipaas_queue_ack('emails', ARRAY[2])", &[])
        .unwrap()
        .get(0);
    assert_eq!(acked, 1);
    assert_eq!(
        count(&mut c, "SELECT done FROM minipaas_queue_stats('emails')"),
        2
    );
    let notes: Vec<_> = listener
        .notifications()
        .timeout_iter(Duration::from_secs(2))
        .take(2)
        .collect()
        .unwrap();
    assert_eq!(notes.len(), 2, "one NOTIFY per enqueue");
    assert!(notes
        .iter()
        .all(|n| n.channel() == "emails" && n.payload().is_empty()));

    c.batch_execute("SELECT minipaas_stream_create('events')")
        .unwrap();
    let big = "x".repeat(20_000);
    for i in 0..3 {
        c.execute(
            "SELECT * FROM minipaas_stream_publish('events', jsonb_build_object('i', $1::int, 'big', $2::text))",
            &[&i, &big],
        )
        .unwrap();
    }
    let rows = c
        .query(
            "SELECT id, payload, created_at FROM minipaas_stream_consume('events', 0, 2)",
            &[],
        )
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2]);
    let rows = c
        .query(
            "SELECT id FROM minipaas_stream_consume('events', 2, 100)",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    c.batch_execute("SELECT minipaas_stream_delete('events')")
        .unwrap();
    assert!(c
        .batch_execute("SELECT * FROM minipaas_stream_consume('events', 0, 1)")
        .is_err());

    for bad in ["Emails", "a-b", "x; drop table emails", "1q"] {
        let err = c
            .execute("SELECT minipaas_queue_create($1)", &[&bad])
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid name") || format!("{err:?}").contains("invalid name"),
            "{bad}: {err:?}"
        );
    }
}

/// How the stream workload publishes and consumes.
#[derive(Clone, Copy, PartialEq)]
enum Streams {
    /// minipaas: commit-ordered positions, consumer groups with offsets in the database.
    Minipaas,
    /// The original: a sequence id at insert, consumers asking for `id > last_id`.
    Naive,
}

const NAIVE_SQL: &str = "
CREATE TABLE naive (id bigserial PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
";

/// 8 publishers, each in 10 rounds of one transaction with two events; in every round half of
/// them publish at once and hold their transaction open for 120 ms while the other half publish
/// 20 ms later and commit at once, so commits land in another order than ids. 3 consumers poll
/// every 2 ms. Returns what each consumer saw, in order.
fn stream_workload(db: &TestDb, flavor: Streams) -> Vec<Vec<String>> {
    let mut c = db.client();
    match flavor {
        Streams::Minipaas => c
            .batch_execute("SELECT minipaas_stream_create('ev')")
            .unwrap(),
        Streams::Naive => c.batch_execute(NAIVE_SQL).unwrap(),
    }
    let done = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..3)
        .map(|k| {
            let (name, done) = (db.name.clone(), done.clone());
            thread::spawn(move || {
                let mut c = crate::common::pg::connect_to(&name);
                let group = format!("g{k}");
                if flavor == Streams::Minipaas {
                    c.execute("SELECT minipaas_stream_group_create('ev', $1)", &[&group])
                        .unwrap();
                }
                let mut seen = Vec::new();
                let mut last_id = 0i64;
                let mut drained_after_done = false;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let rows = match flavor {
                        Streams::Minipaas => c
                            .query("SELECT id, payload::text FROM minipaas_stream_read('ev', $1, 7)", &[&group])
                            .unwrap(),
                        Streams::Naive => c
                            .query("SELECT id, payload::text FROM naive WHERE id > $1 ORDER BY id LIMIT 7", &[&last_id])
                            .unwrap(),
                    };
                    for r in &rows {
                        last_id = r.get(0);
                        seen.push(r.get::<_, String>(1));
                    }
                    if let (Streams::Minipaas, false) = (flavor, rows.is_empty()) {
                        c.execute("SELECT minipaas_stream_commit('ev', $1, $2)", &[&group, &last_id])
                            .unwrap();
                    }
                    if rows.is_empty() {
                        if drained_after_done {
                            return seen;
                        }
                        drained_after_done = finished;
                        thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let name = db.name.clone();
            thread::spawn(move || {
                let mut c = crate::common::pg::connect_to(&name);
                for round in 0..10 {
                    let long = (p + round) % 2 == 0;
                    if !long {
                        thread::sleep(Duration::from_millis(20));
                    }
                    let mut tx = c.transaction().unwrap();
                    for e in 0..2 {
                        let payload = format!("{{\"p\": {p}, \"r\": {round}, \"e\": {e}}}");
                        match flavor {
                            Streams::Minipaas => tx
                                .execute(
                                    "SELECT * FROM minipaas_stream_publish('ev', $1::text::jsonb)",
                                    &[&payload],
                                )
                                .unwrap(),
                            Streams::Naive => tx
                                .execute(
                                    "INSERT INTO naive (payload) VALUES ($1::text::jsonb)",
                                    &[&payload],
                                )
                                .unwrap(),
                        };
                    }
                    if long {
                        thread::sleep(Duration::from_millis(120));
                    }
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher");
    }
    done.store(true, Ordering::SeqCst);
    consumers
        .into_iter()
        .map(|c| c.join().expect("consumer"))
        .collect()
}

const EVENTS: usize = 8 * 10 * 2;

#[test]
fn sql_stream_consumers_see_every_event_once_in_one_order() {
    let db = TestDb::new("stream");
    db.install();
    let seen = stream_workload(&db, Streams::Minipaas);
    for (k, s) in seen.iter().enumerate() {
        let unique: HashSet<&String> = s.iter().collect();
        assert_eq!(unique.len(), s.len(), "consumer {k} saw an event twice");
        assert_eq!(s.len(), EVENTS, "consumer {k} missed events");
    }
    assert!(
        seen.iter().all(|s| s == &seen[0]),
        "consumers disagree on the order"
    );

    // offsets live in the database: lag 0 everywhere, then trim below the slowest group
    let mut c = db.client();
    let lags: Vec<i64> = c
        .query("SELECT lag FROM minipaas_stream_stats('ev')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(lags, [0, 0, 0]);
    c.batch_execute("SELECT minipaas_stream_seek('ev', 'g1', 100)")
        .unwrap();
    let out = minipaas(&db, &["stream", "trim", "ev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "deleted 100 events from `ev`");
    let out = minipaas(&db, &["stream", "stats", "ev", "--format", "json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats[1]["group_name"], "g1");
    assert_eq!(stats[1]["lag"], (EVENTS - 100) as i64);
    assert_eq!(stats[0]["events"], (EVENTS - 100) as i64);
}

#[test]
fn sql_stream_workload_catches_the_original_naive_cursor() {
    let db = TestDb::new("naive");
    let seen = stream_workload(&db, Streams::Naive);
    let missed: Vec<usize> = seen.iter().map(|s| EVENTS - s.len()).collect();
    assert!(
        missed.iter().any(|m| *m > 0),
        "the workload should make the naive `id > last_id` consumers skip events"
    );
    eprintln!("naive consumers missed {missed:?} of {EVENTS} events");
}

#[test]
fn sql_stream_event_committing_late_is_not_skipped() {
    let db = TestDb::new("late");
    db.install();
    let mut a = db.client();
    let mut b = db.client();
    let mut reader = db.client();
    a.batch_execute("SELECT minipaas_stream_create('ev')")
        .unwrap();
    let mut ta = a.transaction().unwrap();
    ta.batch_execute("SELECT minipaas_stream_publish('ev', '\"early insert, late commit\"')")
        .unwrap();
    b.batch_execute("SELECT minipaas_stream_publish('ev', '\"late insert, early commit\"')")
        .unwrap();
    let first = reader
        .query(
            "SELECT id, payload #>> '{}' FROM minipaas_stream_consume('ev', 0, 10)",
            &[],
        )
        .unwrap();
    assert_eq!(first.len(), 1);
    let last_id: i64 = first[0].get(0);
    ta.commit().unwrap();
    let next = reader
        .query(
            "SELECT payload #>> '{}' FROM minipaas_stream_consume('ev', $1, 10)",
            &[&last_id],
        )
        .unwrap();
    assert_eq!(next.len(), 1, "the late commit comes after what was read");
    assert_eq!(next[0].get::<_, String>(0), "early insert, late commit");
}

fn schema_fingerprint(c: &mut postgres::Client) -> String {
    c.query_one(
        "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
            SELECT p.oid::regprocedure::text || pg_get_functiondef(p.oid) AS x FROM pg_proc p
            WHERE p.proname LIKE 'minipaas%' AND p.prokind = 'f'
            UNION ALL SELECT c.oid::regclass::text || c.oid FROM pg_class c WHERE c.relname LIKE 'minipaas%'
            UNION ALL SELECT version || name || applied_at FROM minipaas_schema_migrations) s",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn sql_migrate_is_idempotent_and_refuses_a_newer_schema() {
    let db = TestDb::new("migrate");
    let out = minipaas(&db, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "applied 001_queues\napplied 002_streams\n2 migration(s) applied; schema version 2\n"
    );
    let mut c = db.client();
    let before = schema_fingerprint(&mut c);
    let out = minipaas(&db, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "0 migration(s) applied; schema version 2\n"
    );
    assert_eq!(
        schema_fingerprint(&mut c),
        before,
        "second migrate changed the schema"
    );
    let out = minipaas(&db, &["status"]);
    assert!(
        text(&out.stdout).starts_with("schema version: 2 (this minipaas knows 2)\npending: none\n")
    );

    c.batch_execute(
        "INSERT INTO minipaas_schema_migrations (version, name) VALUES (3, '003_future')",
    )
    .unwrap();
    let before = schema_fingerprint(&mut c);
    let out = minipaas(&db, &["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("schema version 3 is newer than this minipaas knows (2); refusing"),
        "{err}"
    );
    assert!(
        !err.contains(crate::common::pg::PASSWORD),
        "the password leaked: {err}"
    );
    assert_eq!(schema_fingerprint(&mut c), before);
}

#[test]
fn sql_files_install_with_plain_psql_and_migrate_takes_over() {
    let db = TestDb::new("psqlf");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/001_queues.sql");
    let url = db
        .url()
        .replace(&format!(":{}@", crate::common::pg::PASSWORD), "@");
    let out = Command::new("psql")
        .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", file, &url])
        .env("PGPASSWORD", crate::common::pg::PASSWORD)
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = minipaas(&db, &["status", "--format", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["installed"], 1);
    assert_eq!(st["pending"], serde_json::json!(["002_streams"]));
    let out = minipaas(&db, &["migrate"]);
    assert_eq!(
        text(&out.stdout),
        "applied 002_streams\n1 migration(s) applied; schema version 2\n"
    );
}

#[test]
fn sql_bad_url_and_names_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_minipaas"))
        .args(["sql", "--database-url", "mysql://u:pw@h/db", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("pw"));
    let out = Command::new(env!("CARGO_BIN_EXE_minipaas"))
        .args(["sql", "queue", "list"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let db = TestDb::new("badname");
    let out = minipaas(&db, &["queue", "purge", "x;drop"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The password need not be on minipaas's command line (where `ps` shows it): the URL may come
/// from `DATABASE_URL`, and the password from `PGPASSWORD` or a .pgpass file, as libpq users
/// expect.
#[test]
fn sql_url_and_password_from_the_environment() {
    let db = TestDb::new("envurl");
    let bare = db
        .url()
        .replace(&format!(":{}@", crate::common::pg::PASSWORD), "@");
    assert!(!bare.contains(crate::common::pg::PASSWORD));
    let home = tempfile::tempdir().unwrap();
    let status = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_minipaas"));
        cmd.args(["sql", "status"])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", home.path())
            .env("DATABASE_URL", &bare);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // Without a password anywhere, the server refuses: the others below are really used.
    let out = status(&[]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let out = status(&[("PGPASSWORD", crate::common::pg::PASSWORD)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("schema version"),
        "{}",
        text(&out.stdout)
    );
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "*:*:*:{}:{}\n",
            crate::common::pg::USER,
            crate::common::pg::PASSWORD
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = status(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
