//! SQS task queues: `fleetform-<cluster>-<class>` with a redrive policy onto
//! `fleetform-<cluster>-<class>-dlq`. The visibility timeout is the lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};
use fleetform_core::layout;
use fleetform_core::queue::{Depth, QueueError, Received, TaskQueue};

/// SQS's redrive after this many receives is only a safety net against crash loops: the
/// agent counts real failures itself (interruptions must not count, and every receive
/// does in SQS's own counter).
pub const REDRIVE_MAX_RECEIVES: u32 = 10;
/// Default visibility timeout of a new queue (a lease; agents set their own per receive).
pub const DEFAULT_VISIBILITY_SECONDS: u32 = 60;
/// SQS's default for work queues (4 days).
pub const RETENTION_SECONDS: u32 = 4 * 24 * 3600;
/// The DLQ keeps messages for the maximum (14 days) so that someone can look at them.
pub const DLQ_RETENTION_SECONDS: u32 = 14 * 24 * 3600;

/// The queue attributes fleetform manages: the only ones a definition sets and `apply`
/// compares.
pub const MANAGED_ATTRIBUTES: [&str; 3] = ["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"];

/// A queue as fleetform defines it: its name and its managed attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDefinition {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

/// The one definition of a class's queues, dead-letter queue first, used by `apply` and by
/// `ensure` (every submit) alike. SQS answers `QueueNameExists` to a CreateQueue whose
/// attributes differ from the existing queue's, so both must send exactly these.
pub fn definitions(cluster: &str, class: &str, dlq_arn: &str) -> [QueueDefinition; 2] {
    let dlq = QueueDefinition {
        name: layout::sqs_dead_letter_queue(cluster, class),
        attributes: BTreeMap::from([
            ("MessageRetentionPeriod".into(), DLQ_RETENTION_SECONDS.to_string()),
            ("VisibilityTimeout".into(), DEFAULT_VISIBILITY_SECONDS.to_string()),
        ]),
    };
    let queue = QueueDefinition {
        name: layout::sqs_queue(cluster, class),
        attributes: BTreeMap::from([
            ("MessageRetentionPeriod".into(), RETENTION_SECONDS.to_string()),
            ("RedrivePolicy".into(), redrive_policy(dlq_arn, REDRIVE_MAX_RECEIVES)),
            ("VisibilityTimeout".into(), DEFAULT_VISIBILITY_SECONDS.to_string()),
        ]),
    };
    [dlq, queue]
}

/// A redrive policy in its one form: sorted keys, the count a number.
pub fn redrive_policy(dlq_arn: &str, max_receives: u32) -> String {
    serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string()
}

/// A redrive policy as read back (moto and AWS write the count as a string or a number)
/// in the form `redrive_policy` writes, so that both sides of a comparison agree.
pub fn canonical_redrive(raw: &str) -> String {
    use serde_json::Value;
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => {
            let count = match &v["maxReceiveCount"] {
                Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
                other => other.clone(),
            };
            serde_json::json!({"deadLetterTargetArn": v["deadLetterTargetArn"], "maxReceiveCount": count}).to_string()
        }
        Err(_) => raw.to_string(),
    }
}

/// The managed attributes of a queue as read back, in their canonical form.
pub fn managed_attributes<'a>(read: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    read.into_iter()
        .filter(|(k, _)| MANAGED_ATTRIBUTES.contains(k))
        .map(|(k, v)| (k.to_string(), if k == "RedrivePolicy" { canonical_redrive(v) } else { v.to_string() }))
        .collect()
}

/// A definition's attributes in the SDK's form.
pub fn attribute_map(q: &QueueDefinition) -> HashMap<QueueAttributeName, String> {
    q.attributes.iter().map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone())).collect()
}

/// SQS sends at most 10 messages per batch.
const SQS_BATCH: usize = 10;

#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    cluster: String,
    urls: Arc<Mutex<HashMap<String, String>>>,
}

fn backend<E: std::error::Error>(what: &str, e: E) -> QueueError {
    QueueError::Backend(format!("SQS {what}: {}", DisplayErrorContext(e)))
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, cluster: &str) -> SqsQueue {
        SqsQueue { client: aws_sdk_sqs::Client::new(config), cluster: cluster.to_string(), urls: Default::default() }
    }

    /// Receive, waiting up to `wait` (at most 20 s, SQS's long polling) for a message to
    /// arrive: an idle agent then asks once per `wait` instead of once a second.
    pub async fn receive_waiting(&self, class: &str, max: usize, lease: Duration, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let url = self.url(class).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(lease.as_secs().max(1) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// The URL of a queue by name, cached; None if it does not exist.
    async fn url_of(&self, name: &str) -> Result<Option<String>, QueueError> {
        if let Some(u) = self.urls.lock().expect("url cache").get(name) {
            return Ok(Some(u.clone()));
        }
        match self.client.get_queue_url().queue_name(name).send().await {
            Ok(out) => {
                let url = out.queue_url.unwrap_or_default();
                self.urls.lock().expect("url cache").insert(name.to_string(), url.clone());
                Ok(Some(url))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => Ok(None),
            Err(e) => Err(backend("GetQueueUrl", e)),
        }
    }

    async fn url(&self, class: &str) -> Result<String, QueueError> {
        let name = layout::sqs_queue(&self.cluster, class);
        self.url_of(&name)
            .await?
            .ok_or_else(|| QueueError::Backend(format!("queue {name} does not exist: run `fleetform apply`")))
    }

    async fn create(&self, q: &QueueDefinition) -> Result<String, QueueError> {
        let out = self
            .client
            .create_queue()
            .queue_name(&q.name)
            .set_attributes(Some(attribute_map(q)))
            .tags("fleetform:cluster", &self.cluster)
            .tags("fleetform:managed-by", "fleetform")
            .send()
            .await
            .map_err(|e| backend("CreateQueue", e))?;
        let url = out.queue_url.unwrap_or_default();
        self.urls.lock().expect("url cache").insert(q.name.clone(), url.clone());
        Ok(url)
    }

    /// Delete every queue of this cluster (destroy). Returns the names deleted.
    pub async fn delete_all(&self) -> Result<Vec<String>, QueueError> {
        let prefix = format!("fleetform-{}-", self.cluster);
        let out = self
            .client
            .list_queues()
            .queue_name_prefix(&prefix)
            .send()
            .await
            .map_err(|e| backend("ListQueues", e))?;
        let mut deleted = Vec::new();
        for url in out.queue_urls.unwrap_or_default() {
            self.client.delete_queue().queue_url(&url).send().await.map_err(|e| backend("DeleteQueue", e))?;
            deleted.push(url.rsplit('/').next().unwrap_or(&url).to_string());
        }
        self.urls.lock().expect("url cache").clear();
        Ok(deleted)
    }
}

fn lease_lost_or<E>(what: &str, e: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    if code.contains("ReceiptHandleIsInvalid") || code.contains("MessageNotInflight") || code == "InvalidParameterValue" {
        QueueError::LeaseLost
    } else {
        backend(what, e)
    }
}

impl TaskQueue for SqsQueue {
    async fn ensure(&self, class: &str) -> Result<(), QueueError> {
        // The DLQ's ARN is only known once it exists; its definition does not depend on it.
        let [dlq, _] = definitions(&self.cluster, class, "");
        let dlq_url = self.create(&dlq).await?;
        let arn = self
            .client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let [_, queue] = definitions(&self.cluster, class, &arn);
        self.create(&queue).await?;
        Ok(())
    }

    async fn send(&self, class: &str, bodies: &[String]) -> Result<(), QueueError> {
        let url = self.url(class).await?;
        for batch in bodies.chunks(SQS_BATCH) {
            let entries: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, b)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(b).build())
                .collect::<Result<_, _>>()
                .map_err(|e| backend("SendMessageBatch", e))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("SendMessageBatch", e))?;
            if let Some(f) = out.failed.first() {
                return Err(QueueError::Backend(format!("SQS refused a message: {}", f.message.clone().unwrap_or_default())));
            }
        }
        Ok(())
    }

    async fn receive(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError> {
        self.receive_waiting(class, max, lease, Duration::ZERO).await
    }

    async fn extend(&self, class: &str, handle: &str, lease: Duration) -> Result<(), QueueError> {
        let url = self.url(class).await?;
        self.client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(handle)
            .visibility_timeout(lease.as_secs().max(1) as i32)
            .send()
            .await
            .map_err(|e| lease_lost_or("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn release(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        let url = self.url(class).await?;
        match self.client.change_message_visibility().queue_url(&url).receipt_handle(handle).visibility_timeout(0).send().await {
            Ok(_) => Ok(()),
            Err(e) => match lease_lost_or("ChangeMessageVisibility", e) {
                QueueError::LeaseLost => Ok(()), // already someone else's: nothing to release
                other => Err(other),
            },
        }
    }

    async fn delete(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        let url = self.url(class).await?;
        match self.client.delete_message().queue_url(&url).receipt_handle(handle).send().await {
            Ok(_) => Ok(()),
            Err(e) => match lease_lost_or("DeleteMessage", e) {
                QueueError::LeaseLost => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn dead_letter(&self, class: &str, handle: &str, body: &str) -> Result<(), QueueError> {
        let dlq = self
            .url_of(&layout::sqs_dead_letter_queue(&self.cluster, class))
            .await?
            .ok_or_else(|| QueueError::Backend(format!("the dead-letter queue of `{class}` does not exist")))?;
        self.client
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .send()
            .await
            .map_err(|e| backend("SendMessage", e))?;
        self.delete(class, handle).await
    }

    async fn depth(&self, class: &str) -> Result<Depth, QueueError> {
        let Some(url) = self.url_of(&layout::sqs_queue(&self.cluster, class)).await? else {
            return Ok(Depth::default());
        };
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let num = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Depth {
            visible: num(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: num(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    async fn dead_letters(&self, class: &str) -> Result<Vec<String>, QueueError> {
        let Some(url) = self.url_of(&layout::sqs_dead_letter_queue(&self.cluster, class)).await? else {
            return Ok(Vec::new());
        };
        // Peek: visibility 0 leaves them where they are.
        let mut bodies = Vec::new();
        for _ in 0..100 {
            let out = self
                .client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| backend("ReceiveMessage", e))?;
            let msgs = out.messages.unwrap_or_default();
            let before = bodies.len();
            for m in msgs {
                let b = m.body.unwrap_or_default();
                if !bodies.contains(&b) {
                    bodies.push(b);
                }
            }
            if bodies.len() == before {
                break;
            }
        }
        Ok(bodies)
    }

    async fn purge(&self, class: &str) -> Result<(), QueueError> {
        let url = self.url(class).await?;
        self.client.purge_queue().queue_url(&url).send().await.map_err(|e| backend("PurgeQueue", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_definition_of_a_class_queue_and_its_dlq() {
        let [dlq, q] = definitions("workshop", "default", "arn:aws:sqs:us-west-2:123456789012:fleetform-workshop-default-dlq");
        assert_eq!(dlq.name, "fleetform-workshop-default-dlq");
        assert_eq!(q.name, "fleetform-workshop-default");
        assert_eq!(dlq.attributes["MessageRetentionPeriod"], "1209600");
        assert_eq!(q.attributes["MessageRetentionPeriod"], "345600");
        assert_eq!(q.attributes["VisibilityTimeout"], "60");
        assert_eq!(
            q.attributes["RedrivePolicy"],
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-west-2:123456789012:fleetform-workshop-default-dlq","maxReceiveCount":10}"#
        );
        // What SQS reads back, in either spelling of the count, compares equal.
        let read = [("RedrivePolicy", r#"{"maxReceiveCount": "10", "deadLetterTargetArn": "arn:aws:sqs:us-west-2:123456789012:fleetform-workshop-default-dlq"}"#),
            ("MessageRetentionPeriod", "345600"), ("VisibilityTimeout", "60"), ("QueueArn", "arn:x")];
        assert_eq!(managed_attributes(read), q.attributes);
    }
}
