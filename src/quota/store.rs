//! Where budget counters live: a key-value store with compare-and-swap, shaped like
//! proxy-wasm shared data (host-side, shared by every worker VM, surviving VM reloads).
//!
//! Semantics follow the host exactly (proxy-wasm-cpp-host `SharedData::set`):
//! - `get` returns the value and its CAS token, or `None` for a missing key.
//! - `set` with `cas: None` writes unconditionally (the host's `cas == 0`).
//! - `set` with `cas: Some(c)` fails with [`CasMismatch`] if the key exists with another
//!   token. **If the key does not exist the write succeeds whatever `c` is.** Creating a key
//!   is therefore done with [`CREATE_CAS`], a token no existing key is expected to carry: if
//!   another worker created the key first, the write fails and the caller retries.
//!   (The host's counter would have to hold exactly that value at that moment; the chance is
//!   2^-32 per creation race.)

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasMismatch;

/// The token used to create a key that `get` reported missing.
pub const CREATE_CAS: u32 = u32::MAX;

pub trait Store {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value`. The shell maps any host failure to `CasMismatch` (the caller retries
    /// a bounded number of times).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch>;
}

/// An in-memory store with the host's semantics, safe to share between threads.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    writes: u64,
    mismatches: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// (successful writes, CAS mismatches) so far.
    pub fn stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.writes, inner.mismatches)
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().entries.keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock().entries.get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        let mut inner = self.lock();
        // Like the host: tokens count up from 1 and skip 0 ("no check").
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let token = inner.next_cas;
        if let (Some(expected), Some((_, current))) = (cas, inner.entries.get(key)) {
            if expected != 0 && expected != *current {
                inner.mismatches += 1;
                return Err(CasMismatch);
            }
        }
        inner.entries.insert(key.to_string(), (value.to_vec(), token));
        inner.writes += 1;
        Ok(())
    }
}

/// A task run by [`Interleaver`] in the middle of another one's store operations.
pub type Task<'a> = Box<dyn FnOnce(&dyn Store) + 'a>;

/// Simulates concurrent workers deterministically: before each `get` or `set` of whatever
/// runs against it, it may (as `schedule` decides) first run a whole pending task, which
/// itself runs against the interleaver and so may be interrupted in turn. Every task starts
/// between two store operations of another one, as happens when workers race on the host.
pub struct Interleaver<'a> {
    inner: &'a dyn Store,
    tasks: RefCell<VecDeque<Task<'a>>>,
    schedule: RefCell<Box<dyn FnMut() -> bool + 'a>>,
}

impl<'a> Interleaver<'a> {
    /// `schedule` is asked before every store operation whether to run a pending task now.
    pub fn new(inner: &'a dyn Store, schedule: impl FnMut() -> bool + 'a) -> Self {
        Interleaver { inner, tasks: RefCell::new(VecDeque::new()), schedule: RefCell::new(Box::new(schedule)) }
    }

    pub fn push(&self, task: impl FnOnce(&dyn Store) + 'a) {
        self.tasks.borrow_mut().push_back(Box::new(task));
    }

    /// Runs the remaining tasks one after another (each still interruptible).
    pub fn run_all(&self) {
        while let Some(task) = self.pop() {
            task(self);
        }
    }

    fn pop(&self) -> Option<Task<'a>> {
        self.tasks.borrow_mut().pop_front()
    }

    fn maybe_interrupt(&self) {
        let go = match self.schedule.try_borrow_mut() {
            Ok(mut schedule) => schedule(),
            Err(_) => false,
        };
        if go {
            if let Some(task) = self.pop() {
                task(self);
            }
        }
    }
}

impl Store for Interleaver<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.maybe_interrupt();
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        self.maybe_interrupt();
        self.inner.set(key, value, cas)
    }
}
