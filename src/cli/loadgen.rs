//! `playbook load`: a tiny load generator for a running `playbook serve`. Starts N
//! conversations with C concurrent clients, sends T visitor turns in each (button 1, or a
//! text when no button is offered), and prints conversations started per second and visitor
//! turns per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::{EXIT_OK, EXIT_USAGE, print_err, print_out};

/// Runs the load and prints the figures.
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
            print_out(&report);
            EXIT_OK
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
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut started_tokens = Vec::new();
    // Phase 1: starts.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, base, next, errors, playbook) = (
            client.clone(),
            base.clone(),
            next.clone(),
            errors.clone(),
            playbook.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
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
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
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
        let (client, base, errors, done) = (
            client.clone(),
            base.clone(),
            errors.clone(),
            turns_done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for (id, token, mut buttons) in chunk {
                for _ in 0..turns {
                    let body = if buttons {
                        r#"{"choice":1}"#
                    } else {
                        r#"{"text":"Ann"}"#
                    };
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
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            buttons = last_buttons(&v);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let turn_secs = t1.elapsed().as_secs_f64();
    let done = turns_done.load(Ordering::Relaxed);
    Ok(format!(
        "started {started} conversations in {start_secs:.2}s: {:.0} conversations/s\n\
         {done} visitor turns in {turn_secs:.2}s: {:.0} turns/s\n\
         errors: {}\n",
        started as f64 / start_secs.max(1e-9),
        done as f64 / turn_secs.max(1e-9),
        errors.load(Ordering::Relaxed)
    ))
}

fn last_buttons(v: &serde_json::Value) -> bool {
    v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m.get("buttons").is_some())
}
