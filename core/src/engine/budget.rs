//! The per-core upload memory budget: every PUT pipeline (PutObject, UploadPart, copies)
//! reserves the bytes its stripe buffers need before it reads the body, and waits, first come
//! first served, while the core's budget is spent. Many concurrent uploads then slow down
//! (TCP pushes back on their clients) instead of growing the gateway's memory.
//!
//! One per core and single-threaded (`Rc`, `Cell`): no locks, no atomics. A request larger
//! than the whole budget is clamped to it, so it runs alone rather than never.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Default budget per core: 128 MiB.
pub const UPLOAD_MEMORY_PER_CORE_DEFAULT: usize = 128 << 20;

#[derive(Debug)]
struct State {
    capacity: usize,
    available: usize,
    /// Waiting reservations in arrival order: (ticket, waker).
    queue: VecDeque<(u64, Option<Waker>)>,
    next_ticket: u64,
    /// Reservations that had to wait (a pressure indicator).
    waited: u64,
}

impl State {
    fn wake_front(&mut self) {
        if let Some((_, Some(waker))) = self.queue.front() {
            waker.wake_by_ref();
        }
    }
}

/// One core's upload memory budget.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    state: Rc<RefCell<State>>,
}

/// Bytes reserved from a [`ByteBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    state: Rc<RefCell<State>>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.available += self.bytes;
        state.wake_front();
    }
}

impl ByteBudget {
    /// A budget of `capacity` bytes (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ByteBudget {
            state: Rc::new(RefCell::new(State {
                capacity,
                available: capacity,
                queue: VecDeque::new(),
                next_ticket: 0,
                waited: 0,
            })),
        }
    }

    /// Reserves `bytes` (clamped to the capacity), waiting behind earlier reservations.
    #[must_use = "the bytes are reserved only once the future completes"]
    pub fn reserve(&self, bytes: usize) -> Reserve {
        let mut state = self.state.borrow_mut();
        let bytes = bytes.min(state.capacity);
        if state.queue.is_empty() && state.available >= bytes {
            state.available -= bytes;
            return Reserve {
                state: Rc::clone(&self.state),
                bytes,
                ticket: None,
                granted: true,
            };
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waited += 1;
        state.queue.push_back((ticket, None));
        Reserve {
            state: Rc::clone(&self.state),
            bytes,
            ticket: Some(ticket),
            granted: false,
        }
    }

    /// (bytes available now, capacity, reservations that had to wait so far).
    #[must_use]
    pub fn usage(&self) -> (usize, usize, u64) {
        let state = self.state.borrow();
        (state.available, state.capacity, state.waited)
    }
}

/// The future of [`ByteBudget::reserve`].
#[derive(Debug)]
pub struct Reserve {
    state: Rc<RefCell<State>>,
    bytes: usize,
    /// Our place in the queue, if we had to wait.
    ticket: Option<u64>,
    granted: bool,
}

impl Future for Reserve {
    type Output = Reservation;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reservation> {
        let this = &mut *self;
        if !this.granted {
            let mut state = this.state.borrow_mut();
            let first = state.queue.front().map(|(t, _)| *t) == this.ticket;
            if first && state.available >= this.bytes {
                state.available -= this.bytes;
                state.queue.pop_front();
                this.granted = true;
                // The next in line may fit too.
                state.wake_front();
            } else {
                let ticket = this.ticket;
                if let Some(slot) = state.queue.iter_mut().find(|(t, _)| Some(*t) == ticket) {
                    slot.1 = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        this.ticket = None;
        Poll::Ready(Reservation {
            state: Rc::clone(&this.state),
            bytes: std::mem::take(&mut this.bytes),
        })
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        // Abandoned while queued: leave the queue and let the next one try.
        if let Some(ticket) = self.ticket {
            let mut state = self.state.borrow_mut();
            state.queue.retain(|(t, _)| *t != ticket);
            state.wake_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll(future: &mut Reserve) -> (Option<Reservation>, std::sync::Arc<Flag>) {
        let flag = std::sync::Arc::new(Flag(false.into()));
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        match Pin::new(future).poll(&mut cx) {
            Poll::Ready(r) => (Some(r), flag),
            Poll::Pending => (None, flag),
        }
    }

    fn woken(flag: &Flag) -> bool {
        flag.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn reservations_wait_in_order_and_are_given_back() {
        let budget = ByteBudget::new(100);
        let (a, _) = poll(&mut budget.reserve(60));
        let a = a.expect("fits at once");
        let mut b = budget.reserve(50);
        let mut c = budget.reserve(10);
        let (none_b, flag_b) = poll(&mut b);
        assert!(none_b.is_none(), "50 does not fit in the 40 left");
        let (none_c, _) = poll(&mut c);
        assert!(
            none_c.is_none(),
            "10 would fit but waits behind b (first come, first served)"
        );
        assert_eq!(budget.usage(), (40, 100, 2));
        drop(a);
        assert!(woken(&flag_b), "giving bytes back wakes the first in line");
        let (b_granted, _) = poll(&mut b);
        let b_granted = b_granted.expect("b fits now");
        let (c_granted, _) = poll(&mut c);
        assert!(c_granted.is_some(), "c fits beside b");
        drop(b_granted);
        drop(c_granted);
        assert_eq!(budget.usage().0, 100);
    }

    #[test]
    fn oversized_requests_are_clamped_and_abandoned_waiters_leave_the_queue() {
        let budget = ByteBudget::new(100);
        let (huge, _) = poll(&mut budget.reserve(1 << 30));
        let huge = huge.expect("clamped to the capacity, granted when alone");
        let mut waiting = budget.reserve(1);
        let mut after = budget.reserve(1);
        assert!(poll(&mut waiting).0.is_none());
        assert!(poll(&mut after).0.is_none());
        drop(waiting);
        let (still_waiting, flag_after) = poll(&mut after);
        assert!(
            still_waiting.is_none(),
            "first in line now, but nothing to give yet"
        );
        drop(huge);
        assert!(
            woken(&flag_after),
            "the abandoned waiter no longer blocks the queue"
        );
        assert!(poll(&mut after).0.is_some());
    }
}
