//! `playbook load`: a tiny load generator for a running `playbook serve`. Starts N
//! conversations with C concurrent clients, sends T visitor turns in each (button 1, or a
//! text when no button is offered), and prints conversations started per second, visitor
//! turns per second, the latency of a visitor turn (p50, p95, p99, max) and the failed
//! requests. `--addr` may list several servers (`a,b,c`): requests go to each in turn. Any failed request makes the exit code 1: a run that measured errors is not a
//! measurement.
//!
//! Latencies are kept in a sorted `Vec` of microseconds, not a histogram: a run is at most a
//! few hundred thousand turns (4 bytes each), and the percentiles are then exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, print_err, print_out};

/// What a run measured.
struct Report {
    text: String,
    errors: usize,
    first_error: Option<String>,
}

/// Runs the load and prints the figures; exit 1 when any request failed.
pub fn run(
    addr: &str,
    conversations: usize,
    turns: usize,
    concurrency: usize,
    playbook: &str,
) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            return EXIT_USAGE;
        }
    };
    match rt.block_on(drive(
        addr,
        conversations,
        turns,
        concurrency.max(1),
        playbook,
    )) {
        Ok(report) => {
            print_out(&report.text);
            if report.errors == 0 {
                EXIT_OK
            } else {
                print_err(&format!(
                    "error: {} requests failed; the first: {}\n",
                    report.errors,
                    report.first_error.as_deref().unwrap_or("unknown")
                ));
                EXIT_ERRORS
            }
        }
        Err(e) => {
            print_err(&format!("error: {e}\n"));
            EXIT_USAGE
        }
    }
}

async fn drive(
    addr: &str,
    n: usize,
    turns: usize,
    conc: usize,
    playbook: &str,
) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .map_err(|e| e.to_string())?;
    // Several servers (`a,b,c`, replicas of one database): each request goes to the next,
    // so one conversation's turns land on different replicas.
    let bases: Arc<Vec<String>> = Arc::new(
        addr.split(',')
            .map(|a| format!("http://{}", a.trim()))
            .collect(),
    );
    let spread = Arc::new(AtomicUsize::new(0));
    let pick = move |bases: &[String], spread: &AtomicUsize| {
        bases[spread.fetch_add(1, Ordering::Relaxed) % bases.len()].clone()
    };
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut started_tokens = Vec::new();
    // Phase 1: starts.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, bases, spread, next, errors, first, playbook) = (
            client.clone(),
            bases.clone(),
            spread.clone(),
            next.clone(),
            errors.clone(),
            first_error.clone(),
            playbook.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let base = pick(&bases, &spread);
                let r = client
                    .post(format!("{base}/api/conversations"))
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"playbook":"{playbook}","channel":"web"}}"#))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        let id = v["conversation"].as_str().unwrap_or_default().to_owned();
                        let token = v["token"].as_str().unwrap_or_default().to_owned();
                        let buttons = last_buttons(&v);
                        mine.push((id, token, buttons));
                    }
                    other => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        note(&first, "POST /api/conversations", other).await;
                    }
                }
            }
            mine
        }));
    }
    for t in tasks {
        started_tokens.extend(t.await.map_err(|e| e.to_string())?);
    }
    let start_secs = t0.elapsed().as_secs_f64();
    let started = started_tokens.len();
    // Phase 2: turns.
    let t1 = Instant::now();
    let turns_done = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Vec<(String, String, bool)>> = {
        let mut c: Vec<Vec<_>> = (0..conc).map(|_| Vec::new()).collect();
        for (i, x) in started_tokens.into_iter().enumerate() {
            c[i % conc].push(x);
        }
        c
    };
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (client, bases, spread, errors, first, done) = (
            client.clone(),
            bases.clone(),
            spread.clone(),
            errors.clone(),
            first_error.clone(),
            turns_done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(chunk.len() * turns);
            for (id, token, mut buttons) in chunk {
                for _ in 0..turns {
                    let body = if buttons {
                        r#"{"choice":1}"#
                    } else {
                        r#"{"text":"Ann"}"#
                    };
                    let base = pick(&bases, &spread);
                    let sent = Instant::now();
                    let r = client
                        .post(format!("{base}/api/conversations/{id}/messages"))
                        .header("content-type", "application/json")
                        .header("authorization", format!("Bearer {token}"))
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            done.fetch_add(1, Ordering::Relaxed);
                            // The turn ends when its answer has arrived in full.
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            let micros = sent.elapsed().as_micros();
                            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                            buttons = last_buttons(&v);
                        }
                        other => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            note(&first, "POST /api/conversations/{id}/messages", other).await;
                            break;
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(|e| e.to_string())?);
    }
    latencies.sort_unstable();
    let turn_secs = t1.elapsed().as_secs_f64();
    let done = turns_done.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let text = format!(
        "started {started} conversations in {start_secs:.2}s: {:.0} conversations/s\n\
         {done} visitor turns in {turn_secs:.2}s: {:.0} turns/s\n\
         turn latency ms: {}\n\
         errors: {errors}\n",
        started as f64 / start_secs.max(1e-9),
        done as f64 / turn_secs.max(1e-9),
        percentiles(&latencies),
    );
    let first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(Report {
        text,
        errors,
        first_error,
    })
}

/// `p50=… p95=… p99=… max=…` in milliseconds (nearest rank) of sorted microseconds, or
/// `none` without a turn.
fn percentiles(sorted: &[u32]) -> String {
    let Some(&max) = sorted.last() else {
        return "none".to_owned();
    };
    let rank = |p: usize| sorted[(sorted.len() * p).div_ceil(100).max(1) - 1];
    let ms = |us: u32| f64::from(us) / 1000.0;
    format!(
        "p50={:.2} p95={:.2} p99={:.2} max={:.2}",
        ms(rank(50)),
        ms(rank(95)),
        ms(rank(99)),
        ms(max)
    )
}

/// Keeps the first failure's reason, for the message at the end.
async fn note(
    first: &Mutex<Option<String>>,
    what: &str,
    outcome: Result<reqwest::Response, reqwest::Error>,
) {
    let why = match outcome {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            format!(
                "{what}: {status} {}",
                body.chars().take(200).collect::<String>()
            )
        }
        Err(e) => format!("{what}: {e}"),
    };
    let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
    if first.is_none() {
        *first = Some(why);
    }
}

fn last_buttons(v: &serde_json::Value) -> bool {
    v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m.get("buttons").is_some())
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentiles(&us), "p50=50.00 p95=95.00 p99=99.00 max=100.00");
        assert_eq!(percentiles(&[1500]), "p50=1.50 p95=1.50 p99=1.50 max=1.50");
        assert_eq!(percentiles(&[]), "none");
    }
}
