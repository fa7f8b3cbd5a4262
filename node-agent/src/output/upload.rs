//! A task's uploads: a finished chunk uploads under its deterministic name while the task
//! computes the next one.

use std::collections::VecDeque;

use anyhow::{Context, Result};
use fleetform_core::task::Chunk;
use tokio::runtime::Handle;

use super::staging::{self, Staged};
use super::Resume;
use fleetform_runtime::location::Location;
use fleetform_runtime::store;

/// An output chunk whose upload runs in the background.
struct Uploading {
    chunk: Chunk,
    /// Where to resume if this upload does not finish: the chunk's first unit.
    before: Resume,
    upload: tokio::task::JoinHandle<Result<u64>>,
}

/// A task's uploads, so that a chunk uploads while the next one is computed. At most
/// `UPLOADS_IN_FLIGHT`: staged files wait on the spill disk, and a slow store must slow
/// the task down, not fill the disk.
#[derive(Default)]
pub struct Uploads {
    pending: VecDeque<Uploading>,
    /// Uploaded, in unit order, not yet handed to the task's chunk list.
    done: Vec<Chunk>,
}

const UPLOADS_IN_FLIGHT: usize = 2;

impl Uploads {
    /// Start uploading the staged chunk to `output`; the task goes on computing meanwhile.
    pub fn start(&mut self, h: &Handle, output: &Location, staged: Staged, chunk: Chunk, before: Resume) -> Result<()> {
        let (output, name) = (output.clone(), chunk.file.clone());
        let upload = h.spawn(async move {
            let (bytes, in_memory) = (staged.bytes(), matches!(staged, Staged::Memory { .. }));
            let done = store::upload_staged(&output, &name, staged).await.with_context(|| format!("cannot upload {name} to {}", output.uri));
            staging::uploaded(bytes, in_memory);
            done
        });
        while self.pending.len() >= UPLOADS_IN_FLIGHT {
            self.wait_oldest(h)?;
        }
        self.pending.push_back(Uploading { chunk, before, upload });
        Ok(())
    }

    fn wait_oldest(&mut self, h: &Handle) -> Result<()> {
        let Some(u) = self.pending.pop_front() else { return Ok(()) };
        h.block_on(u.upload).context("an upload panicked")??;
        self.done.push(u.chunk);
        Ok(())
    }

    /// The chunks uploaded so far, in order (stopping at the first still uploading).
    pub fn collect_finished(&mut self, h: &Handle) -> Result<Vec<Chunk>> {
        while self.pending.front().is_some_and(|u| u.upload.is_finished()) {
            self.wait_oldest(h)?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Every chunk, once all uploads have finished.
    pub fn wait_all(&mut self, h: &Handle) -> Result<Vec<Chunk>> {
        while !self.pending.is_empty() {
            self.wait_oldest(h)?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Where to resume if the uploads still running are lost.
    pub fn resume_point(&self) -> Option<Resume> {
        self.pending.front().map(|u| u.before.clone())
    }

    /// Stopped (lease lost, job cancelled): the uploads are abandoned with the attempt.
    pub fn abandon(&mut self) {
        for u in self.pending.drain(..) {
            u.upload.abort();
        }
    }
}
