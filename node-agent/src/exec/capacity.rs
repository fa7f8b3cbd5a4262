//! What a node lends to its tasks, held while each runs, exactly as the autoscaler packs
//! them (`reconciler/src/autoscaler/pack.rs`): a task takes `max(1, ceil(CPU))` slots and
//! its `memory` (GiB); custom resources (`Intel`, `Graviton`) are labels, not consumed.
//! Slots and memory are each a semaphore, so a task either holds all it asks for or does
//! not start.

use std::sync::Arc;

use fleetform_core::resources::MEMORY;
use fleetform_core::task::TaskMessage;
use fleetform_core::Resources;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory is lent in MiB (a semaphore counts whole permits; GiB would round 0.5 away).
const MIB_PER_GIB: f64 = 1024.0;

/// What one task asks of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub slots: u32,
    pub memory_mib: u32,
}

impl Claim {
    pub fn of(resources: &Resources) -> Claim {
        Claim { slots: resources.cpu().ceil().max(1.0) as u32, memory_mib: mib(resources.get(MEMORY).unwrap_or(0.0)) }
    }
    /// The claim of a queue message; a body that does not parse takes one slot (its
    /// handler reports it).
    pub fn of_message(body: &str) -> Claim {
        serde_json::from_str::<TaskMessage>(body).map(|m| Claim::of(&m.resources)).unwrap_or(Claim { slots: 1, memory_mib: 0 })
    }
}

fn mib(gib: f64) -> u32 {
    (gib.max(0.0) * MIB_PER_GIB).ceil() as u32
}

/// The node's slots and, when it declares `memory`, its memory. The reconciler always
/// passes the memory the autoscaler plans with when it knows one (the node type's, else
/// its smallest instance type's); without it, no task that asks for memory runs here,
/// as the autoscaler places none on such a node.
pub struct Capacity {
    slots: Arc<Semaphore>,
    memory: Option<Arc<Semaphore>>,
    total: Claim,
}

/// The share of the node one running task holds; dropping it gives the share back.
pub struct Held {
    slots: OwnedSemaphorePermit,
    _memory: Option<OwnedSemaphorePermit>,
}

impl Held {
    pub fn slots(&self) -> usize {
        self.slots.num_permits()
    }
}

impl Capacity {
    pub fn new(slots: usize, resources: &Resources) -> Capacity {
        let memory_mib = resources.get(MEMORY).map(mib);
        Capacity {
            slots: Arc::new(Semaphore::new(slots)),
            memory: memory_mib.map(|m| Arc::new(Semaphore::new(m as usize))),
            total: Claim { slots: slots as u32, memory_mib: memory_mib.unwrap_or(0) },
        }
    }

    /// Can this node ever run the claim (when idle)? None when it can; else why not.
    pub fn never_fits(&self, c: Claim) -> Option<String> {
        if c.slots > self.total.slots {
            return Some(format!("it takes {} CPU slots and this node has {}", c.slots, self.total.slots));
        }
        if c.memory_mib > 0 && self.memory.is_none() {
            return Some(format!("it asks for {} GiB of memory and this node declares none", gib(c.memory_mib)));
        }
        if c.memory_mib > self.total.memory_mib && self.memory.is_some() {
            return Some(format!("it asks for {} GiB of memory and this node has {}", gib(c.memory_mib), gib(self.total.memory_mib)));
        }
        None
    }

    /// Wait for one free slot: the loop receives only when a task could start.
    pub async fn one_slot(&self) -> Result<OwnedSemaphorePermit, tokio::sync::AcquireError> {
        self.slots.clone().acquire_owned().await
    }

    /// One more slot, if one is free now (for the extra messages of a batch receive).
    pub fn try_one_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Turn the slot the loop holds into the whole claim, if the rest is free now.
    pub fn try_complete(&self, mut slot: OwnedSemaphorePermit, c: Claim) -> Result<Held, OwnedSemaphorePermit> {
        if self.never_fits(c).is_some() {
            return Err(slot);
        }
        let memory = match (&self.memory, c.memory_mib) {
            (Some(m), need) if need > 0 => match m.clone().try_acquire_many_owned(need) {
                Ok(p) => Some(p),
                Err(_) => return Err(slot),
            },
            _ => None,
        };
        if c.slots > 1 {
            match self.slots.clone().try_acquire_many_owned(c.slots - 1) {
                Ok(extra) => slot.merge(extra),
                Err(_) => return Err(slot),
            }
        }
        Ok(Held { slots: slot, _memory: memory })
    }

    /// Wait until the whole claim is free at once (then let it go: the loop receives
    /// again). Taking nothing new meanwhile means small tasks cannot starve a large one.
    pub async fn wait_until_free(&self, c: Claim) {
        let Ok(slots) = self.slots.clone().acquire_many_owned(c.slots.min(self.total.slots)).await else { return };
        if let (Some(m), need) = (&self.memory, c.memory_mib.min(self.total.memory_mib)) {
            if need > 0 {
                let _ = m.clone().acquire_many_owned(need).await;
            }
        }
        drop(slots);
    }
}

fn gib(mib: u32) -> String {
    let g = mib as f64 / MIB_PER_GIB;
    if g.fract() == 0.0 {
        format!("{g:.0}")
    } else {
        format!("{g:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetform_core::resources::CPU;

    fn node(cpu: f64, memory_gib: Option<f64>) -> Capacity {
        let mut r = Resources::new().with(CPU, cpu);
        if let Some(m) = memory_gib {
            r = r.with(MEMORY, m);
        }
        Capacity::new(cpu as usize, &r)
    }

    fn claim(cpu: f64, memory_gib: f64) -> Claim {
        Claim::of(&Resources::new().with(CPU, cpu).with(MEMORY, memory_gib))
    }

    #[tokio::test]
    async fn memory_binds_as_the_autoscaler_packs_it() {
        // pack.rs: 1 CPU + 64 GiB tasks fit two per 16-vCPU, 128 GiB node.
        let n = node(16.0, Some(128.0));
        let c = claim(1.0, 64.0);
        let first = n.try_complete(n.one_slot().await.unwrap(), c).ok().expect("first fits");
        let second = n.try_complete(n.one_slot().await.unwrap(), c).ok().expect("second fits");
        assert!(n.try_complete(n.one_slot().await.unwrap(), c).is_err(), "a third would oversubscribe memory");
        drop(first);
        let third = n.try_complete(n.one_slot().await.unwrap(), c);
        assert!(third.is_ok(), "memory is given back when a task ends");
        drop((second, third));
    }

    #[tokio::test]
    async fn cpu_claims_take_ceil_slots_and_a_refused_claim_gives_its_slot_back() {
        let n = node(8.0, None);
        let held = n.try_complete(n.one_slot().await.unwrap(), claim(3.5, 0.0)).ok().unwrap();
        assert_eq!(held.slots(), 4);
        let other = n.try_complete(n.one_slot().await.unwrap(), claim(4.0, 0.0)).ok().unwrap();
        assert_eq!(other.slots(), 4);
        assert!(n.slots.available_permits() == 0);
        drop(held);
        let refused = n.try_complete(n.one_slot().await.unwrap(), claim(8.0, 0.0)).err().expect("4 of 8 busy");
        drop(refused);
        assert_eq!(n.slots.available_permits(), 4, "the refused claim's slot is free again");
    }

    #[test]
    fn a_claim_that_can_never_fit_says_why() {
        let n = node(4.0, None);
        assert_eq!(n.never_fits(claim(5.0, 0.0)).unwrap(), "it takes 5 CPU slots and this node has 4");
        assert_eq!(n.never_fits(claim(1.0, 0.5)).unwrap(), "it asks for 0.50 GiB of memory and this node declares none");
        let n = node(4.0, Some(16.0));
        assert_eq!(n.never_fits(claim(1.0, 32.0)).unwrap(), "it asks for 32 GiB of memory and this node has 16");
        assert!(n.never_fits(claim(4.0, 16.0)).is_none());
    }

    #[tokio::test]
    async fn waiting_for_a_claim_returns_once_all_of_it_is_free() {
        let n = Arc::new(node(2.0, Some(4.0)));
        let busy = n.try_complete(n.one_slot().await.unwrap(), claim(1.0, 3.0)).ok().unwrap();
        let waiter = {
            let n = n.clone();
            tokio::spawn(async move { n.wait_until_free(claim(1.0, 2.0)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a slot is free but not 2 GiB");
        drop(busy);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
