//! The queue and store conformance suites against SQS and S3 on a moto server: the same
//! suites the SQLite queue and the local directory pass (node-agent unit tests).

use std::io::{Read, Write};
use std::time::Duration;

use crate::moto::Moto;

/// Create a bucket on moto with a plain HTTP PUT (moto does not check signatures; the
/// project has no S3 SDK client: buckets come from CloudFormation, objects from
/// object_store).
fn create_bucket(moto: &Moto, bucket: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", moto.port).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms_on_moto() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let q = fleetform_agent::queue::sqs::SqsQueue::new(&config, "conf");
    fleetform_agent::queue::conformance::run(&q, "default", Duration::from_secs(1), fleetform_agent::queue::conformance::StaleHandles::MayBeAccepted).await;
    let deleted = q.delete_all().await.unwrap();
    assert_eq!(deleted.len(), 2, "the class queue and its dead-letter queue: {deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms_on_moto() {
    let moto = Moto::start();
    create_bucket(&moto, "conf-bucket");
    let config = moto.sdk_config().await;
    let loc = fleetform_agent::storage::open_with(&config, "s3://conf-bucket/prefix").await.unwrap();
    fleetform_agent::store_conformance::run(loc).await;
}
