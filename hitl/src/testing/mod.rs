//! A test kit for workflows: [`TestEngine`].
//!
//! A workflow's interesting paths are the human's: approved, rejected, answered wrong, never
//! answered, answered after a redeploy. A `TestEngine` is a real engine (the same replay,
//! the same rules, the same store contract) arranged so that a test can walk those paths
//! quickly and deterministically:
//!
//! - its records are in memory ([`MemStore`]), and survive [`TestEngine::restart`], which
//!   stops every run where it stands — as a crash or a redeploy would — and opens a new
//!   engine on the same records ([`TestEngine::redeploy`] opens it on other code);
//! - its clock ([`ManualClock`]) starts at a fixed instant and moves only when
//!   [`TestEngine::advance`] moves it, expiring requests and waking sleeping runs whose
//!   time has come, so that a day-long deadline is tested in microseconds;
//!   [`next_request`](TestEngine::next_request) and [`next_sleep`](TestEngine::next_sleep)
//!   wait until a run is waiting for a human or for the clock;
//! - it records its notifications instead of sending them ([`TestEngine::notifications`]):
//!   the webhook body, the Slack message or the e-mail text, links included;
//! - it counts how many times each activity executed rather than replayed
//!   ([`TestEngine::executions`]): "nothing ran twice" is one assertion;
//! - it can replace activities by name with mocks ([`TestEngineBuilder::mock`]), so that a
//!   test of the approval flow does not deploy anything.
//!
//! The helpers that wait for a run ([`next_request`](TestEngine::next_request),
//! [`next_sleep`](TestEngine::next_sleep)) panic, like assertions, when the run settles
//! some other way; the operations a workflow may refuse ([`answer`](TestEngine::answer))
//! return the engine's `Result`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use hitl::prelude::*;
//! use hitl::testing::TestEngine;
//! use serde_json::json;
//!
//! #[task]
//! async fn deploy(service: String) -> String {
//!     unreachable!("the test mocks it: {service}")
//! }
//!
//! #[workflow(inject_context)]
//! async fn release(ctx: &TaskContext, service: String) -> hitl::Result<String> {
//!     let ask = Feedback::approval(format!("Deploy {service}?"))
//!         .expires_after(Duration::from_secs(24 * 3600))
//!         .on_expiry(OnExpiry::Reject)
//!         .notify(Notify::webhook("https://chat.example.com/hooks/deploys"));
//!     match ctx.request_feedback(ask).await {
//!         Ok(answer) if answer.approved() => Ok(deploy(service).await),
//!         Ok(answer) => Ok(format!("rejected by {}", answer.responder())),
//!         Err(hitl::Error::RequestExpired { .. }) => Ok("nobody answered".to_owned()),
//!         Err(other) => Err(other),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
//! let mut t = TestEngine::builder()
//!     .register(release)
//!     .mock("deploy", |_| json!("api deployed"))
//!     .open()
//!     .await?;
//!
//! // Approved after a redeploy: the deploy runs once.
//! let run = t.engine().start(release, ("api".to_owned(),)).await?;
//! let ask = t.next_request(&run).await;
//! assert_eq!(ask.prompt, "Deploy api?");
//! assert_eq!(t.notifications().await[0].to, "https://chat.example.com/hooks/deploys");
//! t.restart().await?;
//! t.answer(&ask, Response::approve(), "alice").await?;
//! assert_eq!(t.run(&run).wait().await?, Outcome::Completed("api deployed".to_owned()));
//! assert_eq!(t.executions("deploy"), 1);
//!
//! // Never answered: a day later it is rejected by its expiry policy.
//! let run = t.engine().start(release, ("web".to_owned(),)).await?;
//! t.next_request(&run).await;
//! t.advance(Duration::from_secs(24 * 3600)).await;
//! assert_eq!(run.wait().await?, Outcome::Completed("nobody answered".to_owned()));
//! # t.close().await }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock::{Clock, ManualClock};
use crate::engine::{Durability, Engine, EngineBuilder};
use crate::error::Result;
use crate::feedback::{Request, Responder, Response};
use crate::journal::hooks::StepHooks;
use crate::notify::Capture;
use crate::run::{Outcome, Run};
use crate::store::MemStore;
use crate::util::lock;
use crate::workflow::Workflow;

pub use crate::notify::SentNotification;

/// Where a test engine's clock starts unless told otherwise: 2026-01-01T00:00:00Z, so that
/// the timestamps a test sees are the same in every run.
pub const DEFAULT_START: Duration = Duration::from_secs(1_767_225_600);

/// Configures a [`TestEngine`]; from [`TestEngine::builder`].
#[must_use = "call `.open().await` to open the test engine"]
pub struct TestEngineBuilder {
    setup: Setup,
    start: SystemTime,
    mocks: HashMap<String, Mock>,
}

/// What every engine the kit opens (the first, and each after a restart) is made with: its
/// settings, and the code it registers (which [`TestEngine::redeploy`] replaces).
#[derive(Clone, Default)]
struct Setup {
    settings: Vec<BuilderStep>,
    code: Vec<BuilderStep>,
}

type BuilderStep = Arc<dyn Fn(EngineBuilder) -> EngineBuilder + Send + Sync>;

impl Setup {
    fn then(mut self, step: impl Fn(EngineBuilder) -> EngineBuilder + Send + Sync + 'static) -> Self {
        self.settings.push(Arc::new(step));
        self
    }

    fn register(mut self, step: impl Fn(EngineBuilder) -> EngineBuilder + Send + Sync + 'static) -> Self {
        self.code.push(Arc::new(step));
        self
    }

    fn apply(&self, builder: EngineBuilder) -> EngineBuilder {
        let steps = self.settings.iter().chain(&self.code);
        steps.fold(builder, |builder, step| step(builder))
    }
}

type Mock = Box<dyn Fn(&MockCall<'_>) -> Value + Send + Sync>;

/// One call of a mocked activity, as its mock sees it ([`TestEngineBuilder::mock`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MockCall<'a> {
    /// The task's registered name.
    pub task: &'a str,
    /// The run executing it.
    pub run_id: &'a str,
    /// The step it executes as (`deploy#0`, `async0/deploy#1`, …).
    pub step_id: &'a str,
    /// How many times this task has executed under this test engine, this call included
    /// (1 for the first).
    pub number: u64,
}

impl TestEngineBuilder {
    /// Registers a workflow, as [`EngineBuilder::register`] does.
    pub fn register<W: Workflow>(mut self, workflow: W) -> Self {
        self.setup = self.setup.register(move |builder| builder.register(workflow));
        self
    }

    /// When steps become durable; [`Durability::Flush`] by default, as in production.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.setup = self.setup.then(move |builder| builder.durability(durability));
        self
    }

    /// The public URL notifications link to ([`EngineBuilder::base_url`]); without it,
    /// recorded notifications carry no links.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.setup = self.setup.then(move |builder| builder.base_url(url.clone()));
        self
    }

    /// Where the clock starts; [`DEFAULT_START`] after the Unix epoch by default.
    pub fn starting_at(mut self, start: SystemTime) -> Self {
        self.start = start;
        self
    }

    /// Any other engine setting, applied to every engine the kit opens:
    /// `.configure(|engine| engine.max_concurrent_runs(2))`. The store, the clock and
    /// background driving stay the kit's (they are set after this); a `.path(..)` fails the
    /// opening, since the engine would have two places to store.
    pub fn configure(
        mut self,
        configure: impl Fn(EngineBuilder) -> EngineBuilder + Send + Sync + 'static,
    ) -> Self {
        self.setup = self.setup.then(configure);
        self
    }

    /// Replaces the activity named `task` (a plain `#[task]`'s registered name, its fn name
    /// or its `#[task(name = "…")]`; or the name of a `ctx.step(name, …)`): wherever a run would execute it, `output` is called
    /// instead of its body, and what it returns is decoded as the task's output (for a task
    /// returning `Result`, as its `Ok` value) and journaled like a real one, so that a
    /// replay finds it. An output that does not decode fails the run with
    /// [`Error::Decode`]. A name that matches no task is never called, and the real task
    /// runs: [`TestEngine::executions`] of a mocked task shows it was reached.
    ///
    /// [`Error::Decode`]: crate::Error::Decode
    ///
    /// ```
    /// # use hitl::testing::TestEngine;
    /// # use serde_json::json;
    /// let kit = TestEngine::builder()
    ///     .mock("deploy", |call| json!(format!("deployment {}", call.number)));
    /// ```
    pub fn mock(
        mut self,
        task: &str,
        output: impl Fn(&MockCall<'_>) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.mocks.insert(task.to_owned(), Box::new(output));
        self
    }

    /// [`mock`](Self::mock) with the same output for every call.
    ///
    /// # Panics
    ///
    /// When `output` does not serialize to JSON.
    pub fn mock_value(self, task: &str, output: impl Serialize) -> Self {
        let output = serde_json::to_value(output)
            .unwrap_or_else(|error| panic!("the mock output of task `{task}` does not serialize: {error}"));
        self.mock(task, move |_| output.clone())
    }

    /// Opens the test engine.
    ///
    /// # Errors
    ///
    /// What [`EngineBuilder::open`] returns, such as [`Error::DuplicateWorkflow`].
    ///
    /// [`Error::DuplicateWorkflow`]: crate::Error::DuplicateWorkflow
    pub async fn open(self) -> Result<TestEngine> {
        let activities = Arc::new(Activities {
            executions: Default::default(),
            mocks: self.mocks,
            sleeps: Default::default(),
            slept: tokio::sync::Notify::new(),
        });
        let mut kit = TestEngine {
            engine: None,
            store: MemStore::new(),
            clock: ManualClock::new(self.start),
            activities,
            capture: Arc::new(Capture::default()),
            setup: self.setup,
        };
        kit.engine = Some(kit.open_engine().await?);
        Ok(kit)
    }
}

/// An engine for tests: in memory, on a clock that moves when told, recording its
/// notifications and counting its activities. See the [module docs](self).
pub struct TestEngine {
    /// `None` only while [`restart`](Self::restart) swaps engines.
    engine: Option<Engine>,
    store: MemStore,
    clock: ManualClock,
    activities: Arc<Activities>,
    capture: Arc<Capture>,
    setup: Setup,
}

impl std::fmt::Debug for TestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEngine")
            .field("clock", &self.clock)
            .field("executions", &*lock(&self.activities.executions))
            .finish_non_exhaustive()
    }
}

impl TestEngine {
    /// A test engine to configure; `.register(..)` its workflows, then `.open().await`.
    pub fn builder() -> TestEngineBuilder {
        TestEngineBuilder {
            setup: Setup::default(),
            start: UNIX_EPOCH + DEFAULT_START,
            mocks: HashMap::new(),
        }
    }

    async fn open_engine(&self) -> Result<Engine> {
        // The kit's own settings go last, so that no `configure` can swap them out.
        self.setup
            .apply(Engine::builder())
            .store(self.store.clone())
            .clock(self.clock.clone())
            .background(true)
            .under_test(
                Arc::clone(&self.activities) as Arc<dyn StepHooks>,
                Arc::clone(&self.capture),
            )
            .open()
            .await
    }

    /// The engine: start runs, answer, list, cancel and decide through it as in production.
    /// After a [`restart`](Self::restart) this is the new engine.
    pub fn engine(&self) -> &Engine {
        self.engine
            .as_ref()
            .expect("the test engine is open between restarts")
    }

    /// The engine's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// `run`'s handle on the current engine: a handle from before a
    /// [`restart`](Self::restart) belongs to the engine that was closed, and waiting on it
    /// returns [`Error::Closed`](crate::Error::Closed).
    pub fn run<T: DeserializeOwned>(&self, run: &Run<T>) -> Run<T> {
        self.engine().handle(run.id())
    }

    /// Waits until `run` stops executing and returns the first request it waits on (the one
    /// made first; `run.settled()` gives them all).
    ///
    /// A request with an in-memory window ([`Feedback::timeout`]) keeps its run executing
    /// until the window has passed on the test clock: [`advance`](Self::advance) past it
    /// first, or read the request with [`Engine::pending`].
    ///
    /// [`Feedback::timeout`]: crate::Feedback::timeout
    /// # Panics
    ///
    /// When the run settles without asking — it completed, failed, was cancelled or is
    /// blocked — with that outcome in the message, or when waiting fails.
    pub async fn next_request<T: DeserializeOwned>(&self, run: &Run<T>) -> Request {
        let run: Run<Value> = self.engine().handle(run.id());
        match run.settled().await {
            Ok(Outcome::Paused(requests)) if !requests.is_empty() => {
                requests.into_iter().next().expect("not empty")
            }
            Ok(outcome) => panic!("run {} asked no human: it settled as {outcome:?}", run.id()),
            Err(error) => panic!("waiting for run {} to ask a human failed: {error}", run.id()),
        }
    }

    /// Waits until `run` is in a durable sleep (`ctx.sleep`) and returns when it will wake,
    /// by the test clock: [`advance`](Self::advance) past it to wake the run. A run asleep
    /// already returns at once.
    ///
    /// # Panics
    ///
    /// When the run settles (pauses on a human, completes, fails, is cancelled or blocked)
    /// without a sleep in progress, or when waiting fails.
    pub async fn next_sleep<T: DeserializeOwned>(&self, run: &Run<T>) -> SystemTime {
        let run: Run<Value> = self.engine().handle(run.id());
        let sleeping = || {
            let now = crate::clock::to_millis(self.clock.now());
            self.activities
                .sleeping_until(run.id(), now)
                .map(crate::clock::from_millis)
        };
        let asleep = async {
            loop {
                let mut slept = std::pin::pin!(self.activities.slept.notified());
                slept.as_mut().enable();
                if let Some(deadline) = sleeping() {
                    return deadline;
                }
                slept.await;
            }
        };
        tokio::select! {
            biased;
            deadline = asleep => deadline,
            // Paused (on a human, perhaps beside a sleep), finished or blocked.
            settled = run.settled() => match (sleeping(), settled) {
                (Some(deadline), _) => deadline,
                (None, Ok(outcome)) => panic!("run {} did not sleep: it settled as {outcome:?}", run.id()),
                (None, Err(error)) => panic!("waiting for run {} to sleep failed: {error}", run.id()),
            },
        }
    }

    /// Answers `request` as `responder`: [`Engine::respond`] with a plain
    /// [`Responder::new`]. The run resumes; `run.settled()` or `run.wait()` waits for what
    /// it does next.
    ///
    /// # Errors
    ///
    /// What [`Engine::respond`] refuses: an answer of the wrong kind, a responder not
    /// allowed, a request already answered, expired or cancelled.
    pub async fn answer(&self, request: &Request, response: Response, responder: &str) -> Result<()> {
        self.engine()
            .respond(&request.id, response, Responder::new(responder))
            .await
            .map(|_| ())
    }

    /// Moves the clock forward by `by` and returns once every durable timer that falls due
    /// has fired: requests past their deadline are expired by their policy, and paused runs
    /// whose sleep ended are resumed. A run asleep in memory is woken by the clock itself.
    /// Either way the woken run goes on by itself: `run.settled()` or `run.wait()` waits for
    /// what it does next.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine().timers_caught_up().await;
    }

    /// Stops every run where it stands — in the middle of an activity, between two steps,
    /// waiting for a human — as a crash or a redeploy would, and opens a new engine on the
    /// same records and clock: runs left running resume from their journals, paused ones
    /// wait for their answers. Handles from before must be taken again with
    /// [`run`](Self::run).
    ///
    /// An activity stopped mid-way has no journaled output, so it executes again; one that
    /// returned before the restart replays.
    ///
    /// # Errors
    ///
    /// What closing or opening an engine returns.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(engine) = self.engine.take() {
            engine.close().await?;
        }
        // The closed engine's sleeps ended with it; the new one reports the ones it resumes.
        lock(&self.activities.sleeps).clear();
        self.engine = Some(self.open_engine().await?);
        Ok(())
    }

    /// [`restart`](Self::restart) on other code: the new engine registers what `deploy`
    /// registers, instead of the workflows given so far (its other settings stay). What a
    /// redeploy does to runs that wait: `deploy` may keep an old version beside a new one
    /// (`#[workflow(version = n)]`), patch one, or drop what runs still need, which blocks
    /// them when they resume ([`RunStatus::Blocked`](crate::RunStatus::Blocked)) until a
    /// later redeploy can resume them.
    ///
    /// ```
    /// # use hitl::prelude::*;
    /// # use hitl::testing::TestEngine;
    /// # #[workflow(name = "release")] async fn release_v1() -> u8 { 1 }
    /// # #[workflow(name = "release", version = 2)] async fn release_v2() -> u8 { 2 }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
    /// let mut t = TestEngine::builder().register(release_v1).open().await?;
    /// t.redeploy(|engine| engine.register(release_v1).register(release_v2)).await?;
    /// assert_eq!(t.engine().start(release_v2, ()).await?.wait().await?, Outcome::Completed(2));
    /// # t.close().await }
    /// ```
    ///
    /// # Errors
    ///
    /// What closing or opening an engine returns, such as
    /// [`Error::DuplicateWorkflow`](crate::Error::DuplicateWorkflow).
    pub async fn redeploy(
        &mut self,
        deploy: impl Fn(EngineBuilder) -> EngineBuilder + Send + Sync + 'static,
    ) -> Result<()> {
        self.setup.code = vec![Arc::new(deploy)];
        self.restart().await
    }

    /// How many times the activity named `task` (a plain `#[task]`, or a `ctx.step`)
    /// executed instead of replaying, across
    /// restarts: its body ran (or its mock was called), whether it then returned, failed or
    /// was stopped by a restart. A `#[task(retries = n)]` counts once for all its attempts.
    pub fn executions(&self, task: &str) -> u64 {
        lock(&self.activities.executions).get(task).copied().unwrap_or(0)
    }

    /// The notifications "sent" so far, in order, once every one that is due has been
    /// recorded. None leaves the process.
    ///
    /// # Panics
    ///
    /// When the store cannot be read (it is in memory: it can).
    pub async fn notifications(&self) -> Vec<SentNotification> {
        if let Err(error) = self.engine().notifications_caught_up().await {
            panic!("reading the notification outbox failed: {error}");
        }
        self.capture.sent()
    }

    /// Closes the engine ([`Engine::close`]).
    ///
    /// # Errors
    ///
    /// What [`Engine::close`] returns.
    pub async fn close(mut self) -> Result<()> {
        match self.engine.take() {
            Some(engine) => engine.close().await,
            None => Ok(()),
        }
    }
}

/// The kit's [`StepHooks`]: counts executions, calls mocks, and keeps the durable sleeps in
/// progress.
struct Activities {
    executions: std::sync::Mutex<HashMap<String, u64>>,
    mocks: HashMap<String, Mock>,
    /// Deadline (ms) by (run id, step id).
    sleeps: std::sync::Mutex<HashMap<(String, String), u64>>,
    /// Told whenever a sleep begins.
    slept: tokio::sync::Notify,
}

impl Activities {
    /// The earliest deadline after `now` among `run_id`'s sleeps in progress. A sleep whose
    /// deadline has passed is waking (or was dropped at a pause that woke it): not one to
    /// wait for.
    fn sleeping_until(&self, run_id: &str, now: u64) -> Option<u64> {
        lock(&self.sleeps)
            .iter()
            .filter(|((run, _), deadline)| run == run_id && **deadline > now)
            .map(|(_, deadline)| *deadline)
            .min()
    }
}

impl StepHooks for Activities {
    fn executing(&self, task: &str, run_id: &str, step_id: &str) -> Option<Value> {
        let number = {
            let mut executions = lock(&self.executions);
            let count = executions.entry(task.to_owned()).or_default();
            *count += 1;
            *count
        };
        let mock = self.mocks.get(task)?;
        Some(mock(&MockCall {
            task,
            run_id,
            step_id,
            number,
        }))
    }

    fn sleeping(&self, run_id: &str, step_id: &str, deadline: Option<u64>) {
        let key = (run_id.to_owned(), step_id.to_owned());
        match deadline {
            Some(deadline) => {
                lock(&self.sleeps).insert(key, deadline);
                self.slept.notify_waiters();
            }
            None => {
                lock(&self.sleeps).remove(&key);
            }
        }
    }
}
