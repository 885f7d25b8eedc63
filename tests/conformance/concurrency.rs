//! Many producers and consumers over HTTP at once: every message numbered, none
//! lost, none delivered twice.

use crate::support::{eventually, Client};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const PER_PRODUCER: usize = 40;

pub async fn producers_and_consumers_lose_and_duplicate_nothing(c: &Client) {
    c.create("cc", json!({})).await;
    let total = PRODUCERS * PER_PRODUCER;
    let got: Arc<Mutex<Vec<String>>> = Arc::default();

    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                c.push("cc", format!("p{p}-{i}")).await;
            }
        }));
    }
    for _ in 0..CONSUMERS {
        let c = c.clone();
        let got = got.clone();
        tasks.push(tokio::spawn(async move {
            // Each consumer stops once every message is accounted for; the
            // outer deadline below bounds the whole scenario.
            loop {
                if got.lock().unwrap().len() >= total {
                    return;
                }
                match c.pop("cc").await {
                    Some(m) => {
                        got.lock().unwrap().push(String::from_utf8(m.body.to_vec()).unwrap())
                    }
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.expect("a producer or consumer panicked");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("producers and consumers finished");

    let got = got.lock().unwrap().clone();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a message was delivered twice");
    let expected: HashSet<String> =
        (0..PRODUCERS).flat_map(|p| (0..PER_PRODUCER).map(move |i| format!("p{p}-{i}"))).collect();
    let got_set: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(got_set, expected, "a message was lost or invented");
    eventually("the queue to report empty", Duration::from_secs(10), || async {
        (c.count("cc").await == 0).then_some(())
    })
    .await;
    assert!(c.pop("cc").await.is_none());
}
