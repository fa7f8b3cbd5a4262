//! One conformance suite for every `TaskQueue`: the SQLite queue runs it in unit tests,
//! SQS runs it against a moto server in the end-to-end tests.

use std::time::Duration;

use fleetform_core::queue::{QueueError, Received, TaskQueue};

/// What a backend does with a receipt handle whose lease expired and was taken by
/// another receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleHandles {
    /// Refused with `LeaseLost` (the SQLite queue compares the handle with the current one).
    Refused,
    /// May be accepted: AWS documents that on standard queues an old receipt handle
    /// "might succeed" (knowledge-center/sqs-receipt-handle-error), and moto accepts every
    /// handle a message ever had. Exactly-once never depends on it (done/<task> is
    /// create-if-absent); what must hold is that the stale call changes nothing for the
    /// current holder.
    MayBeAccepted,
}

/// Runs every check on a fresh class name (one nobody else uses, so it starts empty).
/// Panics with a message naming the broken rule. `lease_unit` is the shortest lease the
/// backend honours (SQS counts whole seconds).
///
/// SQS allows one `PurgeQueue` per queue per 60 s (`PurgeQueueInProgress` otherwise; moto
/// 5.2.5 enforces it too), so the suite purges exactly once, as its last check.
pub async fn run<Q: TaskQueue>(q: &Q, class: &str, lease_unit: Duration, stale: StaleHandles) {
    q.ensure(class).await.expect("ensure");
    q.ensure(class).await.expect("ensure is idempotent");
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (0, 0), "a fresh class starts empty (pass a class name nobody else uses)");
    let long = lease_unit * 30;
    let b = send_receive_release(q, class, long).await;
    expired_lease(q, class, lease_unit, long).await;

    // dead-lettering moves the message aside with the given body
    q.dead_letter(class, &b.handle, "b failed").await.expect("dead letter");
    assert!(q.dead_letters(class).await.expect("dead letters").contains(&"b failed".to_string()));
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (0, 0), "nothing is left after delete and dead-letter");

    stale_handle(q, class, lease_unit, long, stale).await;
    purge(q, class, long).await;
}

/// Send two messages, receive both, delete one after a release; the other ("b") stays
/// leased and is returned.
async fn send_receive_release<Q: TaskQueue>(q: &Q, class: &str, long: Duration) -> Received {
    // send / receive / delete
    q.send(class, &["a".to_string(), "b".to_string()]).await.expect("send");
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (2, 0), "two sent messages are visible");
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(q.receive(class, 10, long).await.expect("receive"));
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "both messages are received");
    assert!(got.iter().all(|m| m.receive_count == 1), "first receive counts 1");
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (0, 2), "received messages are in flight");
    assert!(q.receive(class, 10, long).await.expect("receive").is_empty(), "leased messages are invisible");

    // release gives a message back at once, and it counts a second receive
    let a = got.iter().find(|m| m.body == "a").expect("a").clone();
    let b = got.iter().find(|m| m.body == "b").expect("b").clone();
    q.release(class, &a.handle).await.expect("release");
    let again = q.receive(class, 10, long).await.expect("receive");
    assert_eq!(again.len(), 1, "released message is visible again");
    assert_eq!(again[0].body, "a");
    assert_eq!(again[0].receive_count, 2, "receive count grows");
    q.delete(class, &again[0].handle).await.expect("delete");
    b
}

async fn expired_lease<Q: TaskQueue>(q: &Q, class: &str, lease_unit: Duration, long: Duration) {
    // an expired lease makes the message visible; the old handle can no longer extend it
    q.send(class, &["c".to_string()]).await.expect("send");
    let c = q.receive(class, 1, lease_unit).await.expect("receive");
    assert_eq!(c.len(), 1);
    tokio::time::sleep(lease_unit * 2 + Duration::from_millis(200)).await;
    let c2 = q.receive(class, 1, long).await.expect("receive");
    assert_eq!(c2.len(), 1, "a message whose lease expired is received again");
    assert_eq!(c2[0].body, "c");
    match q.extend(class, &c2[0].handle, long).await {
        Ok(()) => {}
        Err(e) => panic!("the current holder can extend its lease: {e}"),
    }
    q.delete(class, &c2[0].handle).await.expect("delete");
}

async fn stale_handle<Q: TaskQueue>(q: &Q, class: &str, lease_unit: Duration, long: Duration, stale: StaleHandles) {
    // a stale handle cannot take back a lease someone else holds
    q.send(class, &["d".to_string()]).await.expect("send");
    let d1 = q.receive(class, 1, lease_unit).await.expect("receive");
    assert_eq!(d1.len(), 1);
    tokio::time::sleep(lease_unit * 2 + Duration::from_millis(200)).await;
    let d2 = q.receive(class, 1, long).await.expect("receive");
    assert_eq!(d2.len(), 1, "an expired lease makes the message visible again");
    assert_ne!(d1[0].handle, d2[0].handle, "every receive gets its own handle");
    match (q.extend(class, &d1[0].handle, long).await, stale) {
        (Err(QueueError::LeaseLost), _) | (Ok(()), StaleHandles::MayBeAccepted) => {}
        (Ok(()), StaleHandles::Refused) => panic!("extending a stale lease must fail with LeaseLost"),
        (Err(e), _) => panic!("extending a stale lease must be LeaseLost, got {e}"),
    }
    q.delete(class, &d1[0].handle).await.expect("stale delete is not an error");
    // Whatever the stale calls did, the current holder still holds the message: it is
    // not visible to others, and its own handle deletes it.
    assert!(q.receive(class, 1, long).await.expect("receive").is_empty(), "the current lease survives stale calls");
    q.delete(class, &d2[0].handle).await.expect("delete");
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (0, 0), "the current holder's delete removes the message");
}

async fn purge<Q: TaskQueue>(q: &Q, class: &str, long: Duration) {
    // purge drops visible and in-flight messages alike
    q.send(class, &["e".to_string(), "f".to_string()]).await.expect("send");
    let leased = q.receive(class, 1, long).await.expect("receive");
    assert_eq!(leased.len(), 1);
    q.purge(class).await.expect("purge");
    let d = q.depth(class).await.expect("depth");
    assert_eq!((d.visible, d.in_flight), (0, 0), "purge leaves nothing, leased or not");
}
