//! SQS task queues: `fleetform-<cluster>-<class>` with a redrive policy onto
//! `fleetform-<cluster>-<class>-dlq`. The visibility timeout is the lease.

use std::collections::HashMap;
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

    async fn create(&self, name: &str, attributes: Vec<(QueueAttributeName, String)>) -> Result<String, QueueError> {
        let mut req = self
            .client
            .create_queue()
            .queue_name(name)
            .tags("fleetform:cluster", &self.cluster)
            .tags("fleetform:managed-by", "fleetform");
        for (k, v) in attributes {
            req = req.attributes(k, v);
        }
        let out = req.send().await.map_err(|e| backend("CreateQueue", e))?;
        let url = out.queue_url.unwrap_or_default();
        self.urls.lock().expect("url cache").insert(name.to_string(), url.clone());
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
        let dlq_name = layout::sqs_dead_letter_queue(&self.cluster, class);
        let dlq_url = self.create(&dlq_name, vec![]).await?;
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
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": REDRIVE_MAX_RECEIVES.to_string()});
        self.create(
            &layout::sqs_queue(&self.cluster, class),
            vec![
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                (QueueAttributeName::VisibilityTimeout, DEFAULT_VISIBILITY_SECONDS.to_string()),
            ],
        )
        .await?;
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
        let url = self.url(class).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(lease.as_secs().max(1) as i32)
            .wait_time_seconds(0)
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
