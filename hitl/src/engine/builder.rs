//! Configuring and opening an engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock, to_millis};
use crate::error::{Error, Result};
use crate::journal::hooks::StepHooks;
use crate::journal::timers::Timers;
use crate::journal::wakeups::Wakeups;
use crate::model::step::TimerAction;
use crate::notify::{Capture, Notifier, Smtp};
use crate::store::{SledStore, Store, sled::SledOptions};
use crate::util::lock;
use crate::workflow::Workflow;

use super::{Durability, Engine, Registered, Registry, Shared};
use crate::journal::services::Services;

/// Configures and opens an [`Engine`].
///
/// # Examples
///
/// ```
/// # use hitl::prelude::*;
/// # #[workflow] async fn release(service: String) -> String { service }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hitl::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder()
///     .path(dir.path().join("hitl.db"))
///     .durability(Durability::Flush)
///     .register(release)
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "call `.open().await` to open the engine"]
pub struct EngineBuilder {
    path: Option<PathBuf>,
    registry: Vec<Registered>,
    durability: Durability,
    clock: Arc<dyn Clock>,
    cache_capacity: u64,
    flush_every: Option<Duration>,
    base_url: Option<String>,
    smtp: Option<Smtp>,
    store: Option<Box<dyn Store>>,
    #[cfg(feature = "postgres")]
    postgres_url: Option<String>,
    background: bool,
    lease: Duration,
    max_concurrent_runs: usize,
    /// Set by `hitl::testing` only.
    hooks: Option<Arc<dyn StepHooks>>,
    capture: Option<Arc<Capture>>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("path", &self.path)
            .field(
                "workflows",
                &self
                    .registry
                    .iter()
                    .map(|r| r.definition.name)
                    .collect::<Vec<_>>(),
            )
            .field("durability", &self.durability)
            .field("clock", &self.clock)
            .field("cache_capacity", &self.cache_capacity)
            .field("flush_every", &self.flush_every)
            .field("base_url", &self.base_url)
            .field("smtp", &self.smtp)
            .finish()
    }
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            path: None,
            registry: Vec::new(),
            durability: Durability::default(),
            clock: Arc::new(SystemClock),
            cache_capacity: 64 * 1024 * 1024,
            flush_every: Some(Duration::from_millis(500)),
            base_url: None,
            smtp: None,
            store: None,
            #[cfg(feature = "postgres")]
            postgres_url: None,
            background: true,
            lease: super::DEFAULT_LEASE,
            max_concurrent_runs: super::DEFAULT_MAX_CONCURRENT_RUNS,
            hooks: None,
            capture: None,
        }
    }
}

impl EngineBuilder {
    /// The database directory (created if missing). Without it, the database is temporary.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Stores runs in `store` instead of the default sled database: [`MemStore`](crate::store::MemStore)
    /// for tests, or any backend implementing [`Store`]. The sled settings (`path`,
    /// `cache_capacity`, `flush_every`) do not apply to it; setting `path` as well is an
    /// error at [`open`](Self::open).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Stores runs in the PostgreSQL database at `url` (feature `postgres`), connecting and
    /// migrating its schema at [`open`](Self::open): what many workers — processes,
    /// machines — open together. The same as `.store(PgStore::connect(url).await?)`.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.postgres_url = Some(url.into());
        self
    }

    /// How long a worker's hold on a run lasts without renewal (30 s by default). With a
    /// store shared by many workers ([`Store::shared`]) the engine renews the leases of its
    /// runs every third of this, and another worker takes over the runs of one that stopped
    /// renewing — died, or stalled — once this has passed. Shorter means faster takeover and
    /// more renewals.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How many runs this engine drives at once, with a shared store (1,000 by default). A
    /// run started while the engine is at the limit is stored for another worker to claim,
    /// and the engine takes over lapsed runs only while it has room.
    pub fn max_concurrent_runs(mut self, runs: usize) -> Self {
        self.max_concurrent_runs = runs.max(1);
        self
    }

    /// Registers a workflow so that its runs can be started and resumed.
    pub fn register<W: Workflow>(mut self, _workflow: W) -> Self {
        self.registry.push(Registered {
            definition: W::DEFINITION,
            start: W::start,
        });
        self
    }

    /// When steps become durable; [`Durability::Flush`] by default.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock for timers, `ctx.now()` and stored timestamps; the system clock by default.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// sled's page cache size in bytes (64 MiB by default).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// How often sled flushes in the background (500 ms by default; `None` never).
    pub fn flush_every(mut self, every: Option<Duration>) -> Self {
        self.flush_every = every;
        self
    }

    /// `false` opens an **operator** engine: it lists, shows, answers and cancels, but drives
    /// nothing — no recovery of runs left `Running` (none is claimed), no timers (no expiry,
    /// no wake-up fires) and no notifications. An answer stored through it wakes its run when
    /// a worker engine next opens the database. This is what `hitl --db DIR` uses. Default
    /// `true`.
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// The public URL of the server that shows requests (`https://hitl.example.com`);
    /// notifications link to `{base_url}/requests/{id}`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The SMTP server that sends e-mail notifications ([`Notify::email`]): a relay beside
    /// the engine, or a provider over TLS ([`Smtp`]). Without one, an engine leaves e-mails
    /// waiting, and says why in the request's history: on a shared store, a worker that has a
    /// server sends them.
    ///
    /// [`Notify::email`]: crate::notify::Notify::email
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use hitl::notify::Smtp;
    /// use hitl::prelude::*;
    ///
    /// # async fn open() -> hitl::Result<()> {
    /// let engine = Engine::builder()
    ///     .path("approvals.db")
    ///     .base_url("https://hitl.example.com")
    ///     .smtp(Smtp::relay("127.0.0.1:25").from("approvals@example.com"))
    ///     .open()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn smtp(mut self, relay: Smtp) -> Self {
        self.smtp = Some(relay);
        self
    }

    /// An engine under `hitl::testing`: it tells `hooks` of every activity it executes, and
    /// records its notifications in `capture` instead of sending them.
    pub(crate) fn under_test(mut self, hooks: Arc<dyn StepHooks>, capture: Arc<Capture>) -> Self {
        self.hooks = Some(hooks);
        self.capture = Some(capture);
        self
    }

    /// Opens the database, recovers runs left `Running` by a process that died, and drives
    /// them again.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateWorkflow`] when two workflows share a name and version;
    /// [`Error::NotAHitlDatabase`], [`Error::DatabaseLocked`], [`Error::Corrupt`] or
    /// [`Error::UnsupportedFormat`] when the directory cannot be used.
    pub async fn open(self) -> Result<Engine> {
        let registry = Registry::new(&self.registry)?;
        // Reading the executable for the code identity takes a while once per process: here,
        // off the runtime's threads, before any run or lease depends on them.
        let _ = tokio::task::spawn_blocking(super::compat::build_identity).await;
        let options = SledOptions {
            path: self.path.clone(),
            cache_capacity: self.cache_capacity,
            flush_every_ms: self.flush_every.map(|every| every.as_millis().max(1) as u64),
        };
        #[cfg(feature = "postgres")]
        let store = match (self.store, self.postgres_url) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidRequest {
                    detail: "an engine stores in one place: give it either `.postgres(..)` or `.store(..)`, not both".to_owned(),
                });
            }
            (_, Some(_)) if self.path.is_some() => {
                return Err(Error::InvalidRequest {
                    detail: "an engine stores in one place: give it either `.path(..)` (sled) or `.postgres(..)`, not both".to_owned(),
                });
            }
            (None, Some(url)) => {
                Some(Box::new(crate::store::PgStore::connect(&url).await?) as Box<dyn Store>)
            }
            (store, None) => store,
        };
        #[cfg(not(feature = "postgres"))]
        let store = self.store;
        let store: Box<dyn Store> = match store {
            Some(_) if self.path.is_some() => {
                return Err(Error::InvalidRequest {
                    detail: "an engine stores in one place: give it either `.path(..)` (sled) or `.store(..)`, not both".to_owned(),
                });
            }
            Some(store) => store,
            None => Box::new(
                tokio::task::spawn_blocking(move || SledStore::open(&options))
                    .await
                    .map_err(|error| Error::Corrupt {
                        path: self.path.clone().unwrap_or_default(),
                        detail: error.to_string(),
                    })??,
            ),
        };
        let link_secret = crate::links::secret(store.as_ref()).await?;
        let outbox = Arc::new(tokio::sync::Notify::new());
        let engine = Engine {
            shared: Arc::new(Shared {
                services: Arc::new(Services {
                    store,
                    clock: self.clock,
                    durability: self.durability,
                    wakeups: Wakeups::default(),
                    timers: Timers::default(),
                    outbox: Arc::clone(&outbox),
                    hooks: self.hooks,
                }),
                registry,
                owner: format!("{}:{}", std::process::id(), uuid::Uuid::new_v4()),
                live: tokio::sync::Mutex::new(HashMap::new()),
                link_secret,
                drives_runs: self.background,
                statuses: Mutex::new(HashMap::new()),
                notifier: Arc::new(Notifier::new(
                    self.base_url,
                    self.smtp,
                    outbox,
                    self.lease,
                    self.capture,
                )),
                background: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                lease: self.lease,
                max_concurrent_runs: self.max_concurrent_runs,
                lease_offset: AtomicI64::new(0),
                drivers: Arc::default(),
                answers: Arc::default(),
            }),
        };
        if !self.background {
            return Ok(engine);
        }
        let shared_store = engine.shared.services.store.shared();
        if shared_store {
            engine.shared.sync_lease_clock().await?;
        }
        // Recover first: a wake-up due at open must find the runs it would resume already live.
        engine.recover().await?;
        let now = to_millis(engine.shared.services.clock.now());
        for timer in engine
            .shared
            .services
            .store
            .due_timers(u64::MAX, usize::MAX)
            .await?
        {
            // A paused run with a due wake-up (an answer stored while no engine ran it) is
            // resumed before `open` returns, so that `settled()` never sees it paused on an
            // answered request. The timer stays armed and is spent when it fires.
            if let TimerAction::Wake(run_id) = &timer.action
                && timer.deadline <= now
                && engine.shared.resume_if_paused(run_id).await?
            {
                engine.shared.services.store.remove_timer(&timer).await?;
                continue;
            }
            engine.shared.services.timers.arm(timer);
        }
        let weak = Arc::downgrade(&engine.shared);
        let timers = tokio::spawn(super::background::timer_loop(weak.clone()));
        let notifier =
            tokio::spawn(Arc::clone(&engine.shared.notifier).run(Arc::downgrade(&engine.shared.services)));
        lock(&engine.shared.background).extend([timers, notifier]);
        if shared_store {
            let events = engine.shared.services.store.events().await?;
            let leases = tokio::spawn(super::fleet::lease_loop(weak.clone()));
            let listener = tokio::spawn(super::fleet::event_loop(weak.clone(), events));
            lock(&engine.shared.background).extend([leases, listener]);
        }
        Ok(engine)
    }
}
