//! The scheduler, cache and permissions services in running backends: tasks on their cadence,
//! global tasks once across instances, the scheduler's HTTP endpoints, caches shared through
//! Redis, and permission decisions from a permission backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backstage::database::Engine;
use backstage::permissions::{Decision, Permission, Permissions};
use backstage::plugin::BoxFuture;
use backstage::prelude::*;
use backstage::scheduler::TaskSchedule;
use backstage::testing::{
    TestBackend, TestCaches, TestDatabases, TestRequest, TestResponse, json, mock,
};
use serde_json::Value;

/// Polls `done` every 20 ms for up to `within`.
async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// Scheduler

/// How often each of the ticker's tasks ran: a root service, so that each backend counts its
/// own runs while other tests run at the same time.
#[service(scope = "root", id = "tests.ticker-runs")]
#[derive(Clone, Default)]
pub struct TickerRuns {
    ticks: Arc<AtomicUsize>,
    global_ticks: Arc<AtomicUsize>,
    manual: Arc<AtomicUsize>,
    slow_started: Arc<AtomicUsize>,
    slow_finished: Arc<AtomicUsize>,
}

fn count(runs: &AtomicUsize) -> usize {
    runs.load(Ordering::SeqCst)
}

/// A task that counts its runs in `runs`.
fn counted(runs: Arc<AtomicUsize>) -> impl Fn() -> BoxFuture<'static, Result<()>> + Send + Sync {
    move || {
        let runs = runs.clone();
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Schedules a local ticker, a global ticker, a manual task, a failing one and a slow one.
#[backend_plugin(id = "ticker")]
pub struct Ticker {
    #[inject]
    scheduler: Scheduler,
    #[inject]
    runs: TickerRuns,
}

#[routes]
impl Ticker {
    #[init]
    async fn init(&self) -> Result<()> {
        let (scheduler, runs) = (&self.scheduler, &self.runs);
        let every = |ms| TaskSchedule::every(Duration::from_millis(ms));
        let manual = TaskSchedule::manual;
        scheduler
            .schedule_task("tick", every(50).local(), counted(runs.ticks.clone()))
            .await?;
        scheduler
            .schedule_task(
                "global-tick",
                every(100),
                counted(runs.global_ticks.clone()),
            )
            .await?;
        scheduler
            .schedule_task("manual", manual(), counted(runs.manual.clone()))
            .await?;
        scheduler
            .schedule_task("failing", manual(), || async {
                Err(Error::internal("broken on purpose"))
            })
            .await?;
        let (started, finished) = (runs.slow_started.clone(), runs.slow_finished.clone());
        let slow = manual().timeout(Duration::from_secs(10));
        scheduler
            .schedule_task("slow", slow, move || {
                let (started, finished) = (started.clone(), finished.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .await?;
        // Workers wait for the backend to start: nothing has run during init.
        tokio::time::sleep(Duration::from_millis(150)).await;
        if count(&runs.ticks) + count(&runs.global_ticks) > 0 {
            return Err(Error::internal("a task ran before the backend started"));
        }
        Ok(())
    }
}

const TASKS: &str = "/api/ticker/.backstage/scheduler/v1/tasks";
const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// A backend serving the ticker (its init fails if a task runs before the backend started),
/// and the ticker's runs.
async fn ticker() -> (TestBackend, TickerRuns) {
    let runs = TickerRuns::default();
    let backend = TestBackend::builder()
        .plugin::<Ticker>()
        .service(runs.clone())
        .start()
        .await
        .unwrap();
    (backend, runs)
}

/// Asks the scheduler to run task `id` now, as an operator's service would.
fn trigger(backend: &TestBackend, id: &str) -> TestRequest {
    backend
        .post(&format!("{TASKS}/{id}/trigger"))
        .credentials(mock::service("external:ops"))
}

/// The ticker's tasks as the endpoint lists them to a user.
async fn tasks(backend: &TestBackend) -> TestResponse {
    backend
        .get(TASKS)
        .credentials(mock::user("user:default/alice"))
        .send()
        .await
}

/// Task `id` as the endpoint lists it once `until` holds for it, or after five seconds.
async fn task_when(backend: &TestBackend, id: &str, until: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let listed: Value = tasks(backend).await.json();
        let task = listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["taskId"] == id)
            .cloned()
            .unwrap();
        if until(&task) || start.elapsed() > FIVE_SECONDS {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Triggers the slow task and waits until its run has started.
async fn start_slow(backend: &TestBackend, runs: &TickerRuns) {
    assert_eq!(trigger(backend, "slow").send().await.status(), 200);
    assert!(eventually(FIVE_SECONDS, || count(&runs.slow_started) == 1).await);
}

#[backstage::test]
async fn tasks_run_on_their_cadence_once_the_backend_has_started() {
    let (backend, runs) = ticker().await;
    assert!(eventually(FIVE_SECONDS, || count(&runs.ticks) >= 3).await);
    assert!(eventually(FIVE_SECONDS, || count(&runs.global_ticks) >= 2).await);
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn manual_tasks_wait_for_a_trigger() {
    let (backend, runs) = ticker().await;
    assert!(eventually(FIVE_SECONDS, || count(&runs.ticks) >= 3).await);
    assert_eq!(count(&runs.manual), 0, "manual tasks wait for a trigger");
    assert_eq!(trigger(&backend, "manual").send().await.status(), 200);
    assert!(eventually(FIVE_SECONDS, || count(&runs.manual) == 1).await);
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn the_scheduler_endpoints_need_credentials() {
    let (backend, _) = ticker().await;
    let res = backend.get(TASKS).send().await;
    assert_eq!(res.status(), 401, "the endpoints need credentials");
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn the_scheduler_endpoint_lists_the_tasks_with_their_settings() {
    let (backend, _) = ticker().await;
    let res = tasks(&backend).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let listed: Value = res.json();
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["failing", "global-tick", "manual", "slow", "tick"]);
    let tick = &listed["tasks"][4];
    assert_eq!(tick["pluginId"], "ticker");
    assert_eq!(tick["scope"], "local");
    assert_eq!(
        tick["settings"],
        json!({"version": 2, "cadence": "PT0.050S", "timeoutAfterDuration": "PT3600S"})
    );
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn triggering_a_task_while_it_runs_is_a_conflict() {
    let (backend, runs) = ticker().await;
    start_slow(&backend, &runs).await;
    let res = trigger(&backend, "slow").send().await;
    assert_eq!(res.status(), 409, "{}", res.text());
    assert_eq!(res.error().0, "ConflictError");
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn the_scheduler_endpoint_shows_a_run_under_way() {
    let (backend, runs) = ticker().await;
    start_slow(&backend, &runs).await;
    // From the shared table: "slow" is global.
    let slow = task_when(&backend, "slow", |_| true).await;
    assert_eq!(slow["taskState"]["status"], "running", "{slow}");
    assert!(
        slow["taskState"]["startedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{slow}"
    );
    assert!(slow["taskState"]["timesOutAt"].is_string(), "{slow}");
    assert_eq!(slow["workerState"]["status"], "running", "{slow}");
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn the_scheduler_endpoint_shows_when_a_task_last_ran() {
    let (backend, runs) = ticker().await;
    assert!(eventually(FIVE_SECONDS, || count(&runs.ticks) >= 3).await);
    let tick = task_when(&backend, "tick", |_| true).await;
    assert!(tick["taskState"]["lastRunEndedAt"].is_string(), "{tick}");
    assert!(tick["taskState"].get("lastRunError").is_none(), "{tick}");
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn a_manual_task_that_ran_is_idle_with_no_next_start() {
    let (backend, runs) = ticker().await;
    assert_eq!(trigger(&backend, "manual").send().await.status(), 200);
    assert!(eventually(FIVE_SECONDS, || count(&runs.manual) == 1).await);
    let manual = task_when(&backend, "manual", |t| t["taskState"]["status"] == "idle").await;
    assert_eq!(manual["taskState"]["status"], "idle", "{manual}");
    assert!(
        manual["taskState"].get("startsAt").is_none(),
        "manual tasks have no next start: {manual}"
    );
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn a_failed_runs_error_is_kept_where_every_instance_sees_it() {
    let (backend, _) = ticker().await;
    assert_eq!(trigger(&backend, "failing").send().await.status(), 200);
    let failing = task_when(&backend, "failing", |t| {
        t["taskState"]["lastRunError"].is_string()
    })
    .await;
    assert_eq!(
        failing["taskState"]["lastRunError"], "broken on purpose",
        "{failing}"
    );
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn triggering_an_unknown_task_is_not_found() {
    let (backend, _) = ticker().await;
    let res = trigger(&backend, "nope").send().await;
    assert_eq!(res.status(), 404, "{}", res.text());
    assert_eq!(res.error().0, "NotFoundError");
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn stopping_lets_the_run_under_way_finish() {
    let (backend, runs) = ticker().await;
    start_slow(&backend, &runs).await;
    backend.stop().await.unwrap();
    assert_eq!(
        count(&runs.slow_finished),
        1,
        "the slow run finished before stop returned"
    );
}

#[backstage::test]
async fn no_task_runs_after_stop() {
    let (backend, runs) = ticker().await;
    assert!(eventually(FIVE_SECONDS, || count(&runs.ticks) >= 3).await);
    backend.stop().await.unwrap();
    let ticks = count(&runs.ticks);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&runs.ticks), ticks, "no run after shutdown");
}

/// Runs of `once`'s global task: how many, and how many at the same time at most.
static ONCE_RUNS: AtomicUsize = AtomicUsize::new(0);
static ONCE_RUNNING: AtomicUsize = AtomicUsize::new(0);
static ONCE_OVERLAP: AtomicBool = AtomicBool::new(false);
static ONCE_FAILS: AtomicBool = AtomicBool::new(false);

#[backend_plugin(id = "once")]
pub struct Once {
    #[inject]
    scheduler: Scheduler,
}

#[routes]
impl Once {
    #[init]
    async fn init(&self) -> Result<()> {
        let schedule =
            TaskSchedule::every(Duration::from_millis(300)).timeout(Duration::from_secs(5));
        self.scheduler
            .schedule_task("shared", schedule, || async {
                if ONCE_RUNNING.fetch_add(1, Ordering::SeqCst) > 0 {
                    ONCE_OVERLAP.store(true, Ordering::SeqCst);
                }
                ONCE_RUNS.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                ONCE_RUNNING.fetch_sub(1, Ordering::SeqCst);
                if ONCE_FAILS.load(Ordering::SeqCst) {
                    return Err(Error::internal("failing on purpose"));
                }
                Ok(())
            })
            .await
    }
}

#[backstage::test]
async fn global_tasks_run_once_across_instances() {
    for db in TestDatabases::each() {
        if db.engine() == Engine::Sqlite {
            continue; // in-memory SQLite is one instance's own
        }
        let engine = db.engine().name();
        ONCE_RUNS.store(0, Ordering::SeqCst);
        ONCE_OVERLAP.store(false, Ordering::SeqCst);
        let start = |_: ()| {
            TestBackend::builder()
                .plugin::<Once>()
                .config(db.config())
                .start()
        };
        let began = Instant::now();
        let a = start(()).await.unwrap();
        let b = start(()).await.unwrap();
        assert!(
            eventually(Duration::from_secs(10), || ONCE_RUNS.load(Ordering::SeqCst)
                >= 4)
            .await,
            "{engine}: the task runs"
        );
        // Failing runs are logged and the cadence goes on.
        ONCE_FAILS.store(true, Ordering::SeqCst);
        let runs = ONCE_RUNS.load(Ordering::SeqCst);
        assert!(
            eventually(Duration::from_secs(10), || ONCE_RUNS.load(Ordering::SeqCst)
                >= runs + 2)
            .await,
            "{engine}: a failing task runs again"
        );
        // Either instance's endpoint shows the last run's error, whichever instance ran it.
        for backend in [&a, &b] {
            let listed: serde_json::Value = backend
                .get("/api/once/.backstage/scheduler/v1/tasks")
                .credentials(mock::user("user:default/alice"))
                .send()
                .await
                .json();
            let state = &listed["tasks"][0]["taskState"];
            assert_eq!(
                state["lastRunError"], "failing on purpose",
                "{engine}: {listed}"
            );
            assert!(state["lastRunEndedAt"].is_string(), "{engine}: {listed}");
        }
        ONCE_FAILS.store(false, Ordering::SeqCst);
        let elapsed = began.elapsed();
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let runs = ONCE_RUNS.load(Ordering::SeqCst);
        // One run per 300 ms at most across both instances; two instances each running it
        // would make about twice that.
        let most = elapsed.as_millis() as usize / 300 + 2;
        assert!(
            runs <= most,
            "{engine}: {runs} runs in {elapsed:?}, at most {most} expected"
        );
        assert!(
            !ONCE_OVERLAP.load(Ordering::SeqCst),
            "{engine}: two runs overlapped"
        );
        db.cleanup().await;
    }
}

static MOCKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[backend_plugin(id = "mocked")]
pub struct Mocked {
    #[inject]
    scheduler: Scheduler,
}

#[routes]
impl Mocked {
    #[init]
    async fn init(&self) -> Result<()> {
        self.scheduler
            .schedule_task(
                "often",
                TaskSchedule::every(Duration::from_millis(10)),
                || async {
                    if MOCKED_RUNS.fetch_add(1, Ordering::SeqCst) == 1 {
                        return Err(Error::conflict("second run fails"));
                    }
                    Ok(())
                },
            )
            .await
    }
}

#[backstage::test]
async fn the_mock_scheduler_runs_tasks_on_demand_only() {
    let scheduler = mock::scheduler();
    let backend = TestBackend::builder()
        .plugin::<Mocked>()
        .service(scheduler.clone())
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        MOCKED_RUNS.load(Ordering::SeqCst),
        0,
        "no run without a trigger"
    );
    scheduler.trigger_task("often").await.unwrap();
    let error = scheduler.trigger_task("often").await.unwrap_err();
    assert_eq!(
        error.message(),
        "second run fails",
        "the task's own result comes back"
    );
    assert_eq!(MOCKED_RUNS.load(Ordering::SeqCst), 2);
    let listed = scheduler.get_scheduled_tasks();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].plugin_id.as_str()),
        ("often", "mocked")
    );
    backend.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Cache

#[backstage::test]
async fn caches_store_expire_and_delete_on_every_store() {
    for store in TestCaches::each() {
        let name = store.name();
        let cache = store.cache("memo").unwrap();
        let other = store.cache("other").unwrap();
        cache.set("k", &json!({"a": [1, 2]})).await.unwrap();
        assert_eq!(
            cache.get::<serde_json::Value>("k").await.unwrap(),
            Some(json!({"a": [1, 2]})),
            "{name}"
        );
        assert_eq!(
            other.get::<serde_json::Value>("k").await.unwrap(),
            None,
            "{name}: namespaces"
        );
        cache
            .set_with_ttl("brief", &"x", Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(
            cache.get::<String>("brief").await.unwrap().as_deref(),
            Some("x"),
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            cache.get::<String>("brief").await.unwrap(),
            None,
            "{name}: expired"
        );
        let short = cache.with_default_ttl(Duration::from_millis(100));
        short.set("short", &1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            cache.get::<i32>("short").await.unwrap(),
            None,
            "{name}: default ttl"
        );
        cache.delete("k").await.unwrap();
        cache.delete("k").await.unwrap();
        assert_eq!(
            cache.get::<serde_json::Value>("k").await.unwrap(),
            None,
            "{name}"
        );
        store.cleanup().await;
    }
}

#[backstage::test]
async fn redis_entries_are_laid_out_as_backstage_lays_them_out() {
    let Some(store) = TestCaches::each().into_iter().find(|s| s.name() == "redis") else {
        return;
    };
    let cache = store.cache("memo").unwrap();
    cache
        .set_with_ttl("test:key", &"bob", Duration::from_secs(60))
        .await
        .unwrap();
    let namespace = format!("{}memo", store.prefix());
    let client = redis_client(&store);
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let raw: String = redis_cmd("GET", &format!("{namespace}:dGVzdDprZXk="), &mut connection).await;
    let envelope: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(envelope["value"], "bob");
    assert!(
        envelope["expires"].as_u64().unwrap() > 1_700_000_000_000,
        "{raw}"
    );
    // An entry a TypeScript plugin wrote without a time to live reads back.
    let raw = r#"{"value":{"from":"node"}}"#;
    let _: () = redis::cmd("SET")
        .arg(format!("{namespace}:bm9kZQ=="))
        .arg(raw)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<serde_json::Value>("node").await.unwrap(),
        Some(json!({"from": "node"}))
    );
    store.cleanup().await;
}

fn redis_client(store: &backstage::testing::TestCache) -> redis::Client {
    redis::Client::open(store.url().unwrap()).unwrap()
}

async fn redis_cmd(
    command: &str,
    key: &str,
    connection: &mut redis::aio::MultiplexedConnection,
) -> String {
    redis::cmd(command)
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

#[backend_plugin(id = "memo")]
pub struct Memo {
    #[inject]
    cache: Cache,
}

#[routes]
impl Memo {
    #[route(put, "/{key}")]
    async fn put(
        &self,
        Path(key): Path<String>,
        _c: Credentials,
        body: String,
    ) -> Result<StatusCode> {
        self.cache.set(&key, &body).await?;
        Ok(StatusCode::NO_CONTENT)
    }

    #[route(get, "/{key}")]
    async fn get(&self, Path(key): Path<String>, _c: Credentials) -> Result<String> {
        self.cache
            .get::<String>(&key)
            .await?
            .ok_or_else(|| Error::not_found(format!("no entry {key}")))
    }
}

#[backstage::test]
async fn instances_share_a_redis_cache_and_not_a_memory_one() {
    for store in TestCaches::each() {
        let name = store.name();
        let key = format!("k{}", std::process::id());
        let config = json!({"backend": {"cache": {"defaultTtl": "1500ms"}}});
        let start = || {
            TestBackend::builder()
                .plugin::<Memo>()
                .config(store.config())
                .config(config.clone())
                .start()
        };
        let (a, b) = (start().await.unwrap(), start().await.unwrap());
        let alice = || mock::user("user:default/alice");
        let path = format!("/api/memo/{key}");
        let res = a.put(&path).credentials(alice()).body("hello").send().await;
        assert_eq!(res.status(), 204, "{name}: {}", res.text());
        assert_eq!(
            a.get(&path).credentials(alice()).send().await.text(),
            "hello",
            "{name}"
        );
        let on_b = b.get(&path).credentials(alice()).send().await;
        match name {
            "redis" => assert_eq!(on_b.text(), "hello", "redis is shared"),
            _ => assert_eq!(on_b.status(), 404, "memory is the instance's own"),
        }
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let res = a.get(&path).credentials(alice()).send().await;
        assert_eq!(
            res.status(),
            404,
            "{name}: backend.cache.defaultTtl applies"
        );
        a.stop().await.unwrap();
        b.stop().await.unwrap();
    }
}

#[backstage::test]
async fn a_bad_cache_config_stops_start_up_naming_the_key() {
    let error = TestBackend::builder()
        .plugin::<Memo>()
        .config(json!({"backend": {"cache": {"store": "memcache"}}}))
        .start()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("backend.cache.store"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Permissions

/// Calls to the fake permission backend.
static AUTHORIZE_CALLS: AtomicUsize = AtomicUsize::new(0);
static DROP_ANSWERS: AtomicBool = AtomicBool::new(false);

#[backend_plugin(id = "guarded")]
pub struct Guarded {
    #[inject]
    permissions: Permissions,
}

#[routes]
impl Guarded {
    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<String>, creds: Credentials) -> Result<String> {
        let read = Permission::resource("guarded.item.read", "guarded-item").action("read");
        if !self
            .permissions
            .is_allowed(&read, Some(&id), &creds)
            .await?
        {
            return Err(Error::not_allowed("not yours"));
        }
        Ok(format!("item {id}"))
    }
}

/// A permission backend: alice may read item 1; nobody else may read anything.
#[backend_plugin(id = "permission")]
pub struct FakePermissionBackend;

#[routes]
impl FakePermissionBackend {
    #[route(post, "/authorize")]
    async fn authorize(
        &self,
        creds: Credentials<UserPrincipal>,
        Json(body): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        AUTHORIZE_CALLS.fetch_add(1, Ordering::SeqCst);
        let user = creds.principal().user_entity_ref.clone();
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let answers: Vec<serde_json::Value> = items
            .iter()
            .filter(|_| !DROP_ANSWERS.load(Ordering::SeqCst))
            .map(|item| {
                let allowed = user == "user:default/alice"
                    && item["permission"]["name"] == "guarded.item.read"
                    && item["permission"]["resourceType"] == "guarded-item"
                    && item["resourceRef"] == "1";
                json!({"id": item["id"], "result": if allowed { "ALLOW" } else { "DENY" }})
            })
            .collect();
        Json(json!({ "items": answers }))
    }
}

#[backstage::test]
async fn permissions_are_asked_of_the_permission_backend_when_enabled() {
    let backend = TestBackend::builder()
        .plugin::<Guarded>()
        .plugin::<FakePermissionBackend>()
        .config(json!({"permission": {"enabled": true}}))
        .start()
        .await
        .unwrap();
    let get = |id: &str, who: mock::MockCredentials| {
        backend
            .get(&format!("/api/guarded/items/{id}"))
            .credentials(who)
            .send()
    };
    let res = get("1", mock::user("user:default/alice")).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        get("2", mock::user("user:default/alice")).await.status(),
        403
    );
    assert_eq!(get("1", mock::user("user:default/bob")).await.status(), 403);
    let calls = AUTHORIZE_CALLS.load(Ordering::SeqCst);
    assert_eq!(calls, 3);
    // A service acting on its own behalf is allowed without asking, as in Backstage.
    assert_eq!(
        get("2", mock::service("plugin:catalog")).await.status(),
        200
    );
    assert_eq!(AUTHORIZE_CALLS.load(Ordering::SeqCst), calls);
    // An answer that leaves a request out is an error, never an allow.
    DROP_ANSWERS.store(true, Ordering::SeqCst);
    let res = get("1", mock::user("user:default/alice")).await;
    assert_eq!(res.status(), 500, "{}", res.text());
    DROP_ANSWERS.store(false, Ordering::SeqCst);
    backend.stop().await.unwrap();
}

#[backstage::test]
async fn permissions_allow_everything_unless_enabled_and_mocks_replace_them() {
    let alice = || mock::user("user:default/alice");
    let backend = TestBackend::builder()
        .plugin::<Guarded>()
        .start()
        .await
        .unwrap();
    assert_eq!(
        backend
            .get("/api/guarded/items/9")
            .credentials(alice())
            .send()
            .await
            .status(),
        200
    );
    backend.stop().await.unwrap();

    let backend = TestBackend::builder()
        .plugin::<Guarded>()
        .service(mock::permissions_deny_all())
        .start()
        .await
        .unwrap();
    let res = backend
        .get("/api/guarded/items/9")
        .credentials(alice())
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.error(),
        ("NotAllowedError".to_owned(), "not yours".to_owned())
    );
    backend.stop().await.unwrap();

    let policy = Permissions::from_policy(|_, resource, _| match resource {
        Some("7") => Decision::Allow,
        _ => Decision::Deny,
    });
    let backend = TestBackend::builder()
        .plugin::<Guarded>()
        .service(policy)
        .start()
        .await
        .unwrap();
    assert_eq!(
        backend
            .get("/api/guarded/items/7")
            .credentials(alice())
            .send()
            .await
            .status(),
        200
    );
    assert_eq!(
        backend
            .get("/api/guarded/items/8")
            .credentials(alice())
            .send()
            .await
            .status(),
        403
    );
    backend.stop().await.unwrap();
}
