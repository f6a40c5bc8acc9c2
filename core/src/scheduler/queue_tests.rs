//! The queue alone, with a scripted grant function: no engine.
use super::*;
use crate::call::Decision;
use crate::config::Config;
use crate::scoring::Breakdown;
use std::cell::RefCell;
use std::sync::atomic::AtomicU64;

fn topology() -> Topology {
    let config = Config::from_json(
        r#"{"providers": [{"name": "a"}, {"name": "b"}],
            "capabilities": [{"name": "chat", "providers": [{"provider": "a"}, {"provider": "b"}]},
                             {"name": "solo", "providers": [{"provider": "b"}]}],
            "lanes": [{"name": "critical"}, {"name": "normal", "aging_ms": 100}, {"name": "batch"}]}"#,
    )
    .unwrap();
    crate::topology::build(config, None, 0, &AtomicU64::new(0))
}

fn permit(id: u64) -> Permit {
    Permit {
        id: PermitId(id),
        decision: Decision {
            provider: Arc::from("a"),
            model: Arc::from("a"),
            score: 1.0,
            breakdown: Breakdown {
                quota: 1.0,
                health: 1.0,
                priority: 1.0,
                latency: 1.0,
                cost: 1.0,
            },
            alternatives: Vec::new(),
            skipped: Vec::new(),
        },
    }
}

/// Grants the first `capacity` tickets it is asked for, recording the order; `during` runs
/// inside each grant (as another thread would while the queue's lock is free).
struct Scripted<'q> {
    capacity: RefCell<usize>,
    asked: RefCell<Vec<(u64, usize, usize)>>,
    during: Option<Box<dyn Fn() + 'q>>,
}

impl<'q> Scripted<'q> {
    fn new(capacity: usize) -> Self {
        Scripted {
            capacity: RefCell::new(capacity),
            asked: RefCell::new(Vec::new()),
            during: None,
        }
    }
}

impl Grant for Scripted<'_> {
    fn grant(&self, _: &Topology, _: &CapabilityRt, t: &Ticket, lane: usize, queued: &Blocked) -> Result<Permit> {
        self.asked.borrow_mut().push((t.id, lane, queued.len()));
        if let Some(f) = &self.during {
            f();
        }
        let mut c = self.capacity.borrow_mut();
        if *c == 0 {
            return Err(self.predict_error());
        }
        *c -= 1;
        Ok(permit(t.id))
    }

    fn predict(&self, _: &Topology, _: &CapabilityRt, _: &Ticket, _: usize, _: Option<&Blocked>) -> Error {
        self.predict_error()
    }
}

impl Scripted<'_> {
    fn predict_error(&self) -> Error {
        Error::NoAvailableProvider {
            retry_after_ms: Some(25),
            skipped: Vec::new(),
        }
    }
}

fn push(q: &Queue, cap: &str, lane: usize, now: i64, timeout: i64) -> u64 {
    q.push(cap, lane, &Request::new(), now, timeout, None)
}

#[test]
fn grants_in_rank_order_and_blocks_what_waiters_could_use() {
    let topo = topology();
    let q = Queue::new(3);
    push(&q, "chat", 2, 0, 1_000);
    let normal = push(&q, "chat", 1, 1, 1_000);
    let critical = push(&q, "chat", 0, 2, 1_000);
    push(&q, "solo", 2, 3, 1_000);
    let engine = Scripted::new(1);
    let out = q.poll(&topo, 10, &engine);
    assert_eq!(out.granted.iter().map(|p| p.id.0).collect::<Vec<_>>(), [critical]);
    // `normal` was refused, and blocked a and b: `batch` (chat) and `solo` (b) were never
    // tried; a refusal makes no grant call for those behind it.
    let asked: Vec<u64> = engine.asked.borrow().iter().map(|a| a.0).collect();
    assert_eq!(asked, [critical, normal]);
    let blocked = q.blocked_for(&topo, 2, 10).unwrap();
    assert!(blocked.contains("a") && blocked.contains("b"));
    // A critical request skips nothing: every waiter ranks below it.
    assert!(q.blocked_for(&topo, 0, 10).unwrap().is_empty());
}

#[test]
fn aging_moves_a_waiter_up_one_lane_per_aging_ms() {
    let q = Queue::new(3);
    let lanes = topology().config.lanes.clone();
    push(&q, "chat", 1, 0, 10_000);
    let st = q.state.lock();
    let t = &st.waiters[0].ticket;
    assert_eq!(t.effective_lane(99, &lanes), 1);
    assert_eq!(t.effective_lane(100, &lanes), 0);
    assert_eq!(t.effective_lane(10_000, &lanes), 0);
}

#[test]
fn expired_tickets_are_reported_with_the_predicted_refusal() {
    let topo = topology();
    let q = Queue::new(3);
    let t = push(&q, "chat", 1, 0, 50);
    let engine = Scripted::new(0);
    assert!(q.poll(&topo, 49, &engine).expired.is_empty());
    let out = q.poll(&topo, 50, &engine);
    assert_eq!(out.expired.len(), 1);
    assert_eq!(out.expired[0].0, PermitId(t));
    assert!(matches!(
        out.expired[0].1,
        Error::NoAvailableProvider {
            retry_after_ms: Some(25),
            ..
        }
    ));
    assert!(q.is_empty());
}

#[test]
fn next_wake_is_the_earliest_deadline_aging_step_or_ready_time() {
    let topo = topology();
    let q = Queue::new(3);
    push(&q, "chat", 1, 0, 1_000);
    // Predicted ready in 25 ms beats the aging step at 100 and the deadline at 1,000.
    assert_eq!(q.next_wake(&topo, 10, i64::MAX, None, &Scripted::new(0)), Some(35));
    assert_eq!(q.next_wake(&topo, 10, 20, None, &Scripted::new(0)), Some(20));
}

#[test]
fn a_ticket_withdrawn_while_its_grant_is_made_gives_the_permit_back() {
    let topo = topology();
    let q = Queue::new(3);
    let t = push(&q, "chat", 1, 0, 1_000);
    let mut engine = Scripted::new(1);
    let qr = &q;
    engine.during = Some(Box::new(move || {
        // The queue's lock is free during a grant.
        assert!(qr.withdraw(PermitId(t)));
    }));
    let out = q.poll(&topo, 1, &engine);
    assert!(out.granted.is_empty());
    assert_eq!(out.orphans, [PermitId(t)]);
    assert!(q.is_empty());
}

#[test]
fn a_poll_asked_for_during_a_poll_makes_it_go_round_again() {
    let topo = topology();
    let q = Queue::new(3);
    let first = push(&q, "chat", 1, 0, 1_000);
    let added = std::cell::Cell::new(None);
    let addr = &added;
    let inner = Scripted::new(0);
    let inner = &inner;
    let mut engine = Scripted::new(2);
    let qr = &q;
    engine.during = Some(Box::new(move || {
        if addr.get().is_none() {
            // Another caller enqueues and polls while the first poll grants: its poll
            // returns at once and the running one takes the new waiter too.
            addr.set(Some(push(qr, "solo", 1, 1, 1_000)));
            let nested = qr.poll(&topo_of(), 1, inner);
            assert!(nested.granted.is_empty() && nested.expired.is_empty());
        }
    }));
    let out = q.poll(&topo, 1, &engine);
    let mut granted: Vec<u64> = out.granted.iter().map(|p| p.id.0).collect();
    granted.sort_unstable();
    let mut want = vec![first, added.get().unwrap()];
    want.sort_unstable();
    assert_eq!(granted, want);
    assert!(q.is_empty());
    assert!(inner.asked.borrow().is_empty());
}

fn topo_of() -> Topology {
    topology()
}
