//! `PrimaryHandle::send`: reaching no worker, or a message Node would take as its own, is an
//! error with a cause, never a success that sent nothing.

use muster_cluster::policy::{Readiness, WorkerId};
use muster_cluster::primary::{Event, Primary, PrimaryConfig, SendError};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// `sleep` workers: they never read their channel, but a message is queued for them.
fn config(instances: usize) -> PrimaryConfig {
    let mut c = PrimaryConfig::new("sleep");
    c.args = vec!["30".into()];
    c.node_cluster = false;
    c.policy.instances = instances;
    c.policy.readiness = Readiness::Spawn;
    c.policy.kill_timeout = Duration::from_millis(200);
    c
}

async fn wait_for(p: &mut Primary, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            match p.next_event().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("the primary stopped before {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn send_reaches_workers_refuses_reserved_and_fails_with_none() {
    let mut p = Primary::start(config(2)).unwrap();
    let h = p.handle();
    wait_for(
        &mut p,
        "worker 1 ready",
        |e| matches!(e, Event::Ready { worker, .. } if *worker == WorkerId(1)),
    )
    .await;
    wait_for(
        &mut p,
        "worker 2 ready",
        |e| matches!(e, Event::Ready { worker, .. } if *worker == WorkerId(2)),
    )
    .await;

    assert_eq!(h.send(None, json!({"hello": 1})).await.unwrap(), 2);
    assert_eq!(h.send(Some(WorkerId(2)), json!("hi")).await.unwrap(), 1);
    match h
        .send(None, json!({"cmd": "NODE_CLUSTER", "act": "disconnect"}))
        .await
    {
        Err(SendError::Reserved(cmd)) => assert_eq!(cmd, "NODE_CLUSTER"),
        other => panic!("a reserved message was not refused: {other:?}"),
    }
    match h.send(Some(WorkerId(9)), json!("hi")).await {
        Err(SendError::NoSuchWorker(WorkerId(9))) => {}
        other => panic!("{other:?}"),
    }

    h.scale(0);
    // Both are stopped at once: their exits come in either order.
    let mut exited = Vec::new();
    while exited.len() < 2 {
        let e = wait_for(&mut p, "the workers' exits", |e| {
            matches!(e, Event::Exit { .. })
        })
        .await;
        if let Event::Exit { worker, .. } = e {
            exited.push(worker);
        }
    }
    exited.sort();
    assert_eq!(exited, [WorkerId(1), WorkerId(2)]);
    match h.send(None, json!("anyone?")).await {
        Err(SendError::NoWorker) => {}
        other => panic!("a send to no worker succeeded: {other:?}"),
    }
    h.stop();
    while tokio::time::timeout(WAIT, p.next_event())
        .await
        .expect("the primary stops")
        .is_some()
    {}
}
