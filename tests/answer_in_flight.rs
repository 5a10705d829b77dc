//! A run never acts on an answer a crash could still lose: here, a run in a `join!` that
//! resumes on one answer and then reads the other's, given meanwhile and still being flushed.
//!
//! On sled an answer's write is visible to a read before its answerer's flush returns. The
//! story needs that window held open at the right moment, so it runs on a store that models
//! it: `MemStore`, wrapped so that a write is durable only once a flush issued after it has
//! returned (sled's rule), with two holds the test puts on — the run's read of the second
//! request, and every flush. The second answer's `respond` either waits for its flush or is
//! cancelled during it; and a `respond` given up on mid-flush still resumes its run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hitl::prelude::*;
use hitl::store::{
    FlushFuture, MemStore, OutboxRecord, RequestChange, RequestQuery, RequestRecord, Resolved, RunQuery,
    RunRecord, StepRecord, Store, StoreFuture, Timer,
};
use hitl_workspace::{patiently, paused_on_one};
use serde_json::Value;
use tokio::sync::watch;

/// The holds, and what is durable, shared by the store and the workflow's activity.
struct Gate {
    /// Resolutions written so far (each is a sequence number).
    resolutions: AtomicU64,
    /// The resolutions a completed flush covers: those written before it was issued.
    durable_through: Mutex<u64>,
    /// The request whose next read is held, until `release_read`.
    hold_read_of: Mutex<Option<String>>,
    read_held: watch::Sender<bool>,
    read_released: watch::Sender<bool>,
    flushes_open: watch::Sender<bool>,
    flushes_held: watch::Sender<usize>,
}

impl Gate {
    fn new() -> Self {
        Gate {
            resolutions: AtomicU64::new(0),
            durable_through: Mutex::new(0),
            hold_read_of: Mutex::new(None),
            read_held: watch::channel(false).0,
            read_released: watch::channel(false).0,
            flushes_open: watch::channel(true).0,
            flushes_held: watch::channel(0).0,
        }
    }

    /// Whether every resolution written so far is durable.
    fn every_resolution_durable(&self) -> bool {
        self.resolutions.load(Ordering::SeqCst) <= *self.durable_through.lock().unwrap()
    }

    async fn until<T>(what: &str, sender: &watch::Sender<T>, ready: impl FnMut(&T) -> bool) {
        patiently(what, sender.subscribe().wait_for(ready))
            .await
            .expect("the gate outlives the test");
    }
}

/// Each test's gate, by name: the workflow's activity finds its own through its input.
static GATES: Mutex<BTreeMap<String, Arc<Gate>>> = Mutex::new(BTreeMap::new());

fn gate(name: &str) -> Arc<Gate> {
    Arc::clone(
        GATES
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Gate::new())),
    )
}

/// Whether the activity after both answers found them durable when it ran, by gate.
static ACTED_ON_DURABLE_ANSWERS: Mutex<BTreeMap<String, Vec<bool>>> = Mutex::new(BTreeMap::new());

#[task]
async fn act_on(gate_name: String, first: bool, second: bool) -> bool {
    let durable = gate(&gate_name).every_resolution_durable();
    ACTED_ON_DURABLE_ANSWERS
        .lock()
        .unwrap()
        .entry(gate_name)
        .or_default()
        .push(durable);
    first && second
}

#[workflow(inject_context)]
async fn two_asks(ctx: &TaskContext, gate_name: String) -> hitl::Result<bool> {
    let (first, second) = tokio::try_join!(
        ctx.request_feedback(Feedback::approval("First?").timeout(Duration::ZERO)),
        ctx.request_feedback(Feedback::approval("Second?").timeout(Duration::ZERO)),
    )?;
    Ok(act_on(gate_name, first.approved(), second.approved()).await)
}

/// What becomes of the second answer's `respond` once its write is visible and its flush
/// held.
#[derive(Clone, Copy, PartialEq)]
enum Answerer {
    /// It waits for its flush.
    Waits,
    /// Its caller gives up on it (a timeout, a closed connection): the future is dropped.
    IsCancelled,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_reads_an_answer_still_being_flushed_waits_for_the_flush_before_acting_on_it() {
    story("waits", Answerer::Waits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_answerer_was_cancelled_mid_flush_is_still_flushed_before_a_run_acts_on_it() {
    story("cancelled", Answerer::IsCancelled).await;
}

/// The run pauses on two asks; the first answer resumes it, and its read of the second
/// request is held until the second answer is written and its flush held. Then the run
/// reads that answer, and must flush before its activity acts on it.
async fn story(gate_name: &str, answerer: Answerer) {
    let gate = gate(gate_name);
    let engine = open(&gate).await;
    let run = engine.start(two_asks, (gate_name.to_owned(),)).await.unwrap();
    let Outcome::Paused(asks) = patiently("the run pauses", run.settled()).await.unwrap() else {
        panic!("the run should pause on its two asks");
    };
    let ask = |prompt: &str| asks.iter().find(|ask| ask.prompt == prompt).unwrap().id.clone();
    let (first, second) = (ask("First?"), ask("Second?"));

    // The first answer resumes the run, which reads the second request: held there.
    *gate.hold_read_of.lock().unwrap() = Some(second.clone());
    engine
        .respond(&first, Response::approve(), Responder::new("alice"))
        .await
        .unwrap();
    Gate::until(
        "the resumed run reads the second request",
        &gate.read_held,
        |held| *held,
    )
    .await;

    // The second answer is written, and its flush held: visible, not durable.
    gate.flushes_open.send_replace(false);
    let mut answering = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .respond(&second, Response::approve(), Responder::new("bob"))
                .await
        }
    });
    Gate::until(
        "the second answer's flush is issued",
        &gate.flushes_held,
        |held| *held >= 1,
    )
    .await;
    assert!(!gate.every_resolution_durable());
    let mut flushes_so_far = 1;
    if answerer == Answerer::IsCancelled {
        give_up_on(&mut answering).await;
        // What remains of the answer is seen through in a task of its own: its flush is held
        // too.
        Gate::until("the answer's task flushes", &gate.flushes_held, |held| *held >= 2).await;
        flushes_so_far = 2;
    }

    // The run now reads that answer. It must make it durable before the activity acts on it:
    // the next flush is the run's own (without it, the activity runs here, on an answer a
    // crash would lose, and the next flush is its journal write's).
    gate.read_released.send_replace(true);
    Gate::until("the run flushes", &gate.flushes_held, |held| {
        *held > flushes_so_far
    })
    .await;
    gate.flushes_open.send_replace(true);

    if answerer == Answerer::Waits {
        patiently("the second answer returns", answering)
            .await
            .unwrap()
            .unwrap();
    }
    let outcome = patiently("the run completes", run.wait()).await.unwrap();
    assert_eq!(outcome, Outcome::Completed(true));
    // Copied out first: a failing assertion must not poison the map for the other story.
    let acted = ACTED_ON_DURABLE_ANSWERS.lock().unwrap().get(gate_name).cloned();
    assert_eq!(
        acted,
        Some(vec![true]),
        "the activity ran once, on answers that were both durable"
    );
    engine.close().await.unwrap();
}

#[workflow(inject_context)]
async fn one_ask(ctx: &TaskContext) -> hitl::Result<bool> {
    let answer = ctx
        .request_feedback(Feedback::approval("Only?").timeout(Duration::ZERO))
        .await?;
    Ok(answer.approved())
}

/// An answer, once begun, is seen through by the engine: the caller of `respond` gives up
/// while the answer's flush is held, and the paused run still resumes on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_caller_gives_up_mid_flush_still_resumes_its_paused_run() {
    let gate = gate("gives up");
    let engine = open(&gate).await;
    let run = engine.start(one_ask, ()).await.unwrap();
    let request = paused_on_one(&run).await;

    gate.flushes_open.send_replace(false);
    let mut answering = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .respond(&request.id, Response::approve(), Responder::new("carol"))
                .await
        }
    });
    Gate::until("the answer's flush is issued", &gate.flushes_held, |held| {
        *held >= 1
    })
    .await;
    give_up_on(&mut answering).await;
    gate.flushes_open.send_replace(true);

    let outcome = patiently("the run resumes on the answer", run.wait())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Completed(true));
    engine.close().await.unwrap();
}

/// The caller of `respond` stops waiting: its task, and the `respond` future in it, are
/// dropped.
async fn give_up_on<T: std::fmt::Debug>(answering: &mut tokio::task::JoinHandle<T>) {
    answering.abort();
    let stopped = patiently("the caller gives up", answering).await;
    assert!(stopped.unwrap_err().is_cancelled());
}

async fn open(gate: &Arc<Gate>) -> Engine {
    Engine::builder()
        .store(GatedStore {
            inner: MemStore::new(),
            gate: Arc::clone(gate),
        })
        .register(two_asks)
        .register(one_ask)
        .open()
        .await
        .unwrap()
}

/// `MemStore` with [`Gate`]'s model of durability and its holds; everything else delegated.
struct GatedStore {
    inner: MemStore,
    gate: Arc<Gate>,
}

impl Store for GatedStore {
    fn load_request<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Option<RequestRecord>> {
        Box::pin(async move {
            let held = {
                let mut hold = self.gate.hold_read_of.lock().unwrap();
                hold.take_if(|held| held == request_id).is_some()
            };
            if held {
                self.gate.read_held.send_replace(true);
                Gate::until(
                    "the test releases the read",
                    &self.gate.read_released,
                    |released| *released,
                )
                .await;
            }
            self.inner.load_request(request_id).await
        })
    }

    fn resolve_request<'a>(
        &'a self,
        request_id: &'a str,
        change: &'a RequestChange<'a>,
    ) -> StoreFuture<'a, Resolved> {
        Box::pin(async move {
            let resolved = self.inner.resolve_request(request_id, change).await?;
            if resolved.changed {
                self.gate.resolutions.fetch_add(1, Ordering::SeqCst);
            }
            Ok(resolved)
        })
    }

    fn flush(&self) -> FlushFuture {
        let gate = Arc::clone(&self.gate);
        // What this flush covers is fixed when it is issued, as in sled.
        let covers = gate.resolutions.load(Ordering::SeqCst);
        let flush = self.inner.flush();
        Box::pin(async move {
            if !*gate.flushes_open.borrow() {
                gate.flushes_held.send_modify(|held| *held += 1);
                Gate::until("the test opens the flushes", &gate.flushes_open, |open| *open).await;
            }
            flush.await?;
            let mut durable = gate.durable_through.lock().unwrap();
            *durable = (*durable).max(covers);
            Ok(())
        })
    }

    fn create_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, Option<RunRecord>> {
        self.inner.create_run(run)
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        self.inner.load_run(run_id)
    }

    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        self.inner.save_run(run)
    }

    fn runs<'a>(&'a self, query: &'a RunQuery) -> StoreFuture<'a, Vec<RunRecord>> {
        self.inner.runs(query)
    }

    fn claim_paused<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        now: u64,
        until: u64,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        self.inner.claim_paused(run_id, owner, now, until)
    }

    fn claim_lapsed<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        until: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<RunRecord>> {
        self.inner.claim_lapsed(owner, now, until, limit)
    }

    fn renew_lease<'a>(
        &'a self,
        run_id: &'a str,
        owner: &'a str,
        epoch: u64,
        until: u64,
    ) -> StoreFuture<'a, ()> {
        self.inner.renew_lease(run_id, owner, epoch, until)
    }

    fn load_journal<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, StepRecord)>> {
        self.inner.load_journal(run_id)
    }

    fn append_steps<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        steps: &'a [(String, StepRecord)],
    ) -> StoreFuture<'a, ()> {
        self.inner.append_steps(run_id, epoch, steps)
    }

    fn append_channel_set<'a>(
        &'a self,
        run_id: &'a str,
        epoch: u64,
        step_id: &'a str,
        step: &'a StepRecord,
        key: &'a str,
        value: &'a Value,
    ) -> StoreFuture<'a, ()> {
        self.inner
            .append_channel_set(run_id, epoch, step_id, step, key, value)
    }

    fn channel_value<'a>(&'a self, run_id: &'a str, key: &'a str) -> StoreFuture<'a, Option<Value>> {
        self.inner.channel_value(run_id, key)
    }

    fn channels_of<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        self.inner.channels_of(run_id)
    }

    fn save_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
        sites: &'a [String],
    ) -> StoreFuture<'a, ()> {
        self.inner.save_definition(workflow, fingerprint, sites)
    }

    fn load_definition<'a>(
        &'a self,
        workflow: &'a str,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<Vec<String>>> {
        self.inner.load_definition(workflow, fingerprint)
    }

    fn create_request<'a>(
        &'a self,
        epoch: u64,
        step: &'a StepRecord,
        request: &'a RequestRecord,
        outbox: &'a [OutboxRecord],
        expiry: Option<Timer>,
    ) -> StoreFuture<'a, ()> {
        self.inner.create_request(epoch, step, request, outbox, expiry)
    }

    fn requests<'a>(&'a self, query: &'a RequestQuery) -> StoreFuture<'a, Vec<RequestRecord>> {
        self.inner.requests(query)
    }

    fn due_notifications<'a>(&'a self, now: u64, limit: usize) -> StoreFuture<'a, Vec<OutboxRecord>> {
        self.inner.due_notifications(now, limit)
    }

    fn outbox_of<'a>(&'a self, request_id: &'a str) -> StoreFuture<'a, Vec<OutboxRecord>> {
        self.inner.outbox_of(request_id)
    }

    fn save_outbox<'a>(&'a self, record: &'a OutboxRecord) -> StoreFuture<'a, ()> {
        self.inner.save_outbox(record)
    }

    fn add_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        self.inner.add_timer(timer)
    }

    fn remove_timer<'a>(&'a self, timer: &'a Timer) -> StoreFuture<'a, ()> {
        self.inner.remove_timer(timer)
    }

    fn due_timers(&self, before: u64, limit: usize) -> StoreFuture<'_, Vec<Timer>> {
        self.inner.due_timers(before, limit)
    }

    fn secret(&self) -> StoreFuture<'_, Vec<u8>> {
        self.inner.secret()
    }
}
