//! The commit protocol under crashes: a publish cut after any of its writes, then run
//! again (any later `finalize` does), must leave the output's `_SUCCESS` naming either the
//! old complete result or the new one, with every file it names present and intact; after
//! the re-run, exactly the new result. Every crash point is tried, not a sample.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

use super::*;

/// An in-memory store whose writes (puts, copies, deletes) fail once `budget` of them went
/// through: a process killed at that point.
#[derive(Debug)]
struct Crashing {
    inner: Arc<InMemory>,
    budget: Arc<AtomicUsize>,
}

impl std::fmt::Display for Crashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crashing")
    }
}

fn spend(budget: &AtomicUsize) -> object_store::Result<()> {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
        .map(drop)
        .map_err(|_| object_store::Error::Generic { store: "crashing", source: "killed here".into() })
}

#[async_trait::async_trait]
impl ObjectStore for Crashing {
    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        spend(&self.budget)?;
        self.inner.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(&self, p: &Path, o: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        spend(&self.budget)?;
        self.inner.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        let (inner, budget) = (self.inner.clone(), self.budget.clone());
        locations
            .then(move |p| {
                let (inner, budget) = (inner.clone(), budget.clone());
                async move {
                    let p = p?;
                    spend(&budget)?;
                    inner.delete(&p).await?;
                    Ok(p)
                }
            })
            .boxed()
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        spend(&self.budget)?;
        self.inner.copy_opts(from, to, o).await
    }
}

/// A result of `parts` files, each file's bytes naming the job and the part.
fn result(job: &str, parts: usize) -> (Manifest, Vec<(String, Bytes)>) {
    let tag = short_hash(job);
    let staged: Vec<String> = (0..parts).map(|i| layout::part(&layout::task_id(i), 0, 1)).collect();
    let files = staged.iter().map(|s| ManifestFile { file: layout::published_part(&tag, s), rows: 10 }).collect();
    let manifest = Manifest {
        job_id: job.into(),
        files,
        total_rows: 10 * parts as u64,
        tasks: parts,
        failed_tasks: vec![],
        finished_at: Utc::now(),
        skipped_records: 0,
        not_published: None,
    };
    let bytes = staged.into_iter().map(|s| (s.clone(), Bytes::from(format!("{job}/{s}")))).collect();
    (manifest, bytes)
}

/// A part as a task of `job` leaves it: in the job's staging directory.
async fn stage(out: &Location, job: &str, staged: &str, bytes: &Bytes) {
    let key = out.key(&format!("{}/{staged}", layout::staging_dir(job)));
    out.store.put(&key, PutPayload::from(bytes.clone())).await.unwrap();
}

/// The output as a reader that trusts `_SUCCESS` sees it: the manifest's job, after
/// checking that every file it names is there with that job's bytes.
async fn trusted_view(out: &Location) -> Option<String> {
    let m: Manifest = objects::get_json(out, "_SUCCESS").await.unwrap()?;
    let tag = short_hash(&m.job_id);
    for f in &m.files {
        let staged = layout::staged_part(&tag, &f.file);
        let got = out.store.get(&out.key(&f.file)).await.unwrap_or_else(|e| panic!("{} names {} which is missing: {e}", m.job_id, f.file));
        assert_eq!(got.bytes().await.unwrap(), Bytes::from(format!("{}/{staged}", m.job_id)), "{} holds another job's bytes", f.file);
    }
    Some(m.job_id)
}

#[tokio::test]
async fn a_publish_killed_at_any_write_leaves_the_old_or_the_new_result_and_a_rerun_completes_it() {
    let (old, old_files) = result("old-job", 3);
    let (new, new_files) = result("new-job", 4);
    let mut crash_points = 0;
    for budget in 0.. {
        let memory = Arc::new(InMemory::new());
        let out = |budget: usize| Location {
            store: Arc::new(Crashing { inner: memory.clone(), budget: Arc::new(AtomicUsize::new(budget)) }),
            prefix: Path::default(),
            uri: "memory://out".into(),
            local_dir: None,
        };
        // The old job, published; the new one's parts staged by its tasks.
        let unlimited = out(usize::MAX);
        for (staged, bytes) in &old_files {
            stage(&unlimited, "old-job", staged, bytes).await;
        }
        settle_into(&unlimited, &old).await.unwrap();
        assert_eq!(trusted_view(&unlimited).await.as_deref(), Some("old-job"));
        for (staged, bytes) in &new_files {
            stage(&unlimited, "new-job", staged, bytes).await;
        }

        let crashed = settle_into(&out(budget), &new).await.is_err();
        let seen = trusted_view(&unlimited).await;
        assert!(matches!(seen.as_deref(), Some("old-job" | "new-job")), "killed after {budget} writes: {seen:?}");
        settle_into(&unlimited, &new).await.unwrap();
        assert_eq!(trusted_view(&unlimited).await.as_deref(), Some("new-job"), "killed after {budget} writes, then re-run");
        let mut left = objects::list(&unlimited, "").await.unwrap();
        left.retain(|k| k != "_SUCCESS");
        let mut expected: Vec<String> = new.files.iter().map(|f| f.file.clone()).collect();
        expected.sort();
        assert_eq!(left, expected, "killed after {budget} writes, then re-run: only the new result is left");
        if !crashed {
            break;
        }
        crash_points += 1;
    }
    // 4 moves (a copy and a delete each), _SUCCESS, 3 old parts removed.
    assert_eq!(crash_points, 12, "every write of a publish was a crash point");
}

/// A job that may not publish leaves the output exactly as it was and removes its staging.
#[tokio::test]
async fn a_job_that_may_not_publish_leaves_the_output_as_it_was() {
    let (old, old_files) = result("old-job", 2);
    let (mut failed, failed_files) = result("failed-job", 2);
    failed.not_published = Some("1 of 2 tasks failed".into());
    let out = Location { store: Arc::new(InMemory::new()), prefix: Path::default(), uri: "memory://out".into(), local_dir: None };
    for (job, files) in [("old-job", &old_files), ("failed-job", &failed_files)] {
        for (staged, bytes) in files {
            stage(&out, job, staged, bytes).await;
        }
    }
    settle_into(&out, &old).await.unwrap();
    let before = objects::list(&out, "").await.unwrap();
    settle_into(&out, &failed).await.unwrap();
    let after = objects::list(&out, "").await.unwrap();
    assert_eq!(after, before.into_iter().filter(|k| !k.starts_with("_staging/failed-job/")).collect::<Vec<_>>());
    assert_eq!(trusted_view(&out).await.as_deref(), Some("old-job"));
}

/// A late or repeated finalize of an older job (an agent handling a stale message) never
/// puts its result back over a newer one, even one with no files to move.
#[tokio::test]
async fn an_older_job_settled_again_never_replaces_a_newer_result() {
    let (mut old, _) = result("old-job", 0);
    old.finished_at = Utc::now() - chrono::Duration::minutes(5);
    let (new, new_files) = result("new-job", 2);
    let out = Location { store: Arc::new(InMemory::new()), prefix: Path::default(), uri: "memory://out".into(), local_dir: None };
    for (staged, bytes) in &new_files {
        stage(&out, "new-job", staged, bytes).await;
    }
    settle_into(&out, &new).await.unwrap();
    settle_into(&out, &old).await.unwrap();
    assert_eq!(trusted_view(&out).await.as_deref(), Some("new-job"));
    assert_eq!(objects::list(&out, "").await.unwrap().len(), 3, "the new parts and _SUCCESS");
}
