//! The plugin author's path, walked as a new user walks it: `cargo backstage new app`, a plugin
//! and a module in a temporary folder, the generated tests, the backend and the plugin's
//! development server over HTTP, the watch mode, and the refusals of bad input.
//!
//! The generated crates depend on this checkout (`--backstage-path`) and build in this
//! workspace's target folder, so a warm build of the workspace makes them cheap; the app starts
//! from this workspace's `Cargo.lock` for the same reason (cargo adds what the app needs more).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_BIN_EXE_cargo-backstage");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const STATIC_TOKEN: &str = "golden-path-static-token";

/// The target folder this test binary was built in: `<target>/debug/cargo-backstage`.
fn target_dir() -> PathBuf {
    Path::new(CLI)
        .ancestors()
        .nth(2)
        .expect("the binary is in <target>/<profile>/")
        .to_path_buf()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backstage-golden-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(CLI)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("cargo-backstage runs")
}

fn cargo(dir: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        // This workspace's dev profile: line tables, not full debug info, in the app too.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env_remove("RUSTFLAGS");
    command
}

fn success(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Builds in the apps, one at a time: two apps' `backend` packages share the target folder's
/// `debug/backend`, so each build's binary is copied out before the next build runs.
static CARGO: Mutex<()> = Mutex::new(());

fn cargo_lock() -> std::sync::MutexGuard<'static, ()> {
    CARGO.lock().unwrap_or_else(|p| p.into_inner())
}

/// The app most tests below share: made once, with plugin `todo` and its module `audit`.
struct App {
    root: PathBuf,
    /// The development server keeps its data in one file: one server at a time.
    dev: Mutex<()>,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = temp_dir("app");
        let out = success(
            &cli(
                &dir,
                &["backstage", "new", "app", "demo", "--backstage-path", REPO],
            ),
            "new app",
        );
        assert!(out.contains("Created the app demo"), "{out}");
        let root = dir.join("demo");
        std::fs::copy(Path::new(REPO).join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        let out = success(
            &cli(&root, &["new", "backend-plugin", "--id", "todo"]),
            "new backend-plugin",
        );
        assert!(out.contains("Linked into packages/backend"), "{out}");
        let out = success(
            &cli(
                &root.join("plugins"),
                &[
                    "new",
                    "backend-plugin-module",
                    "--plugin",
                    "todo",
                    "--id",
                    "audit",
                ],
            ),
            "new backend-plugin-module (from a subfolder)",
        );
        assert!(out.contains("Linked into packages/backend"), "{out}");
        App {
            root,
            dev: Mutex::new(()),
        }
    })
}

#[test]
fn a_new_app_is_laid_out_like_a_backstage_repository() {
    let root = &app().root;
    for file in [
        "Cargo.toml",
        "rust-toolchain.toml",
        "README.md",
        "app-config.yaml",
        ".gitignore",
        "packages/backend/Cargo.toml",
        "packages/backend/src/main.rs",
        "plugins/todo-backend/src/lib.rs",
        "plugins/todo-backend/dev/main.rs",
        "plugins/todo-backend/tests/todos.rs",
        "plugins/todo-backend/migrations/0001_create_todos.sql",
        "plugins/todo-backend/README.md",
        "plugins/todo-backend-module-audit/src/lib.rs",
        "plugins/todo-backend-module-audit/tests/module.rs",
    ] {
        assert!(root.join(file).is_file(), "{file} is missing");
    }
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == "app-config.local.yaml"),
        "{ignored}"
    );
    let config = std::fs::read_to_string(root.join("app-config.yaml")).unwrap();
    assert!(
        config.contains("port: 7007") && config.contains("':memory:'"),
        "{config}"
    );
    assert!(
        config.contains("#   client: pg"),
        "a commented PostgreSQL section: {config}"
    );
    let main = std::fs::read_to_string(root.join("packages/backend/src/main.rs")).unwrap();
    assert!(
        main.contains("use todo_backend as _;\nuse todo_backend_module_audit as _;\n"),
        "{main}"
    );
    assert!(main.contains("backstage::start()"), "{main}");
    // The program chooses the allocator: the backend turns jemalloc on, plugin crates do not.
    let backend = std::fs::read_to_string(root.join("packages/backend/Cargo.toml")).unwrap();
    assert!(
        backend.contains("backstage = { workspace = true, features = [\"jemalloc\"] }"),
        "{backend}"
    );
    for plugin in ["todo-backend", "todo-backend-module-audit"] {
        let manifest =
            std::fs::read_to_string(root.join(format!("plugins/{plugin}/Cargo.toml"))).unwrap();
        assert!(
            !manifest.contains("jemalloc") && !manifest.contains("mimalloc"),
            "{plugin}: {manifest}"
        );
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[profile.dev]\ndebug = \"line-tables-only\"\n")
            && manifest.contains("[profile.dev.package.\"*\"]\ndebug = false\n"),
        "line tables for the app's crates, no debug info for dependencies: {manifest}"
    );
}

#[test]
fn the_generated_code_is_formatted_and_its_tests_pass() {
    let app = app();
    let _build = cargo_lock();
    let fmt = cargo(&app.root).args(["fmt", "--check"]).output().unwrap();
    success(&fmt, "cargo fmt --check in the new app");
    let test = cargo(&app.root).arg("test").output().unwrap();
    let stdout = success(&test, "cargo test in the new app");
    for name in [
        "todos_are_created_listed_and_read_on_every_database",
        "todos_need_credentials",
        "services_cannot_create_todos",
        "a_missing_or_blank_title_is_an_input_error",
        "an_unknown_todo_is_not_found",
        "health_is_open_to_everyone",
        "the_module_schedules_its_task_when_the_plugin_starts",
    ] {
        assert!(
            stdout.contains(&format!("test {name} ... ok")),
            "{name} did not pass:\n{stdout}"
        );
    }
}

#[test]
fn a_new_apps_backend_starts_without_plugins_and_says_how_to_add_one() {
    let dir = temp_dir("empty");
    success(
        &cli(&dir, &["new", "app", "empty", "--backstage-path", REPO]),
        "new app",
    );
    let root = dir.join("empty");
    std::fs::copy(Path::new(REPO).join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let backend = build_backend(&root);
    let mut server = Server::start(
        Command::new(&backend)
            .current_dir(&root)
            .env("APP_CONFIG_backend_listen_port", "0"),
    );
    assert_eq!(
        server.get("/.backstage/health/v1/readiness", None),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    server.wait_for_line("No plugins are linked into this backend yet. Create one with `cargo backstage new backend-plugin --id <id>`");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_backend_serves_the_plugin_and_its_module_with_real_auth() {
    let app = app();
    let backend = build_backend(&app.root);

    let listed = Command::new(&backend)
        .arg("--list-routes")
        .current_dir(&app.root)
        .output()
        .unwrap();
    let table = success(&listed, "backend --list-routes");
    let health = table
        .lines()
        .find(|l| l.starts_with("GET") && l.contains("/api/todo/health "))
        .unwrap_or_else(|| panic!("no health route in:\n{table}"));
    assert!(health.contains("unauthenticated"), "{health}");
    let create = table
        .lines()
        .find(|l| l.starts_with("POST") && l.contains("/api/todo/todos "))
        .unwrap_or_else(|| panic!("no POST /todos in:\n{table}"));
    assert!(create.contains("default"), "{create}");

    let externals = format!(
        r#"[{{"type":"static","options":{{"token":"{STATIC_TOKEN}","subject":"golden-path"}}}}]"#
    );
    let server = Server::start(
        Command::new(&backend)
            .current_dir(&app.root)
            .env("APP_CONFIG_backend_listen_port", "0")
            .env("APP_CONFIG_backend_auth_externalAccess", externals),
    );
    assert_eq!(server.get("/.backstage/health/v1/readiness", None).0, 200);
    assert_eq!(
        server.get("/api/todo/health", None),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    let (status, body) = server.get("/api/todo/todos", None);
    assert_eq!(
        status, 401,
        "a real backend has no development user: {body}"
    );
    let token = Some(STATIC_TOKEN);
    assert_eq!(
        server.get("/api/todo/todos", token),
        (200, r#"{"items":[]}"#.to_owned())
    );
    let (status, body) = server.post("/api/todo/todos", token, r#"{"title":"From a script"}"#);
    assert_eq!(
        status, 403,
        "a static token is a service, and services cannot create: {body}"
    );
    let (status, tasks) = server.get("/api/todo/.backstage/scheduler/v1/tasks", token);
    assert_eq!(status, 200, "{tasks}");
    assert!(
        tasks.contains("\"audit-refresh\""),
        "the module scheduled its task: {tasks}"
    );
    server.stop();
}

#[test]
fn the_plugin_describes_its_api_in_openapi() {
    let app = app();
    let plugin = app.root.join("plugins/todo-backend");
    let file = plugin.join("openapi.json");
    let output = {
        let _build = cargo_lock();
        Command::new(CLI)
            .args(["openapi", "--output", "openapi.json"])
            .current_dir(&plugin)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
            .stdin(Stdio::null())
            .output()
            .expect("cargo-backstage runs")
    };
    success(&output, "cargo backstage openapi");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("has no JSON Schema"),
        "the template's types are all described: {stderr}"
    );
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["title"], "todo");
    let create = &spec["paths"]["/todos"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewTodo"
    );
    assert_eq!(create["security"], serde_json::json!([{"JWT": []}]));
    assert_eq!(
        spec["paths"]["/health"]["get"]["security"],
        serde_json::json!([])
    );
    assert!(spec["components"]["schemas"]["TodoItem"]["properties"]["createdBy"].is_object());
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn the_plugin_runs_alone_with_a_development_user_and_keeps_its_data() {
    let app = app();
    let _one_server = app.dev.lock().unwrap_or_else(|p| p.into_inner());
    let plugin = app.root.join("plugins/todo-backend");
    let dev = {
        let _build = cargo_lock();
        build(
            &app.root,
            &["-p", "todo-backend", "--bin", "todo-backend-dev"],
            "todo-backend-dev",
        )
    };
    // A fresh data file for this run; the development server keeps it next to its binary.
    let _ = std::fs::remove_file(dev.with_file_name("backstage-dev").join("todo.sqlite"));

    let standalone = || {
        Server::start(
            Command::new(CLI)
                .args(["start", "--no-watch"])
                .current_dir(&plugin)
                .env("CARGO_TARGET_DIR", target_dir())
                .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
                .env("APP_CONFIG_backend_listen_port", "0"),
        )
    };
    let server = standalone();
    assert!(
        server.log.contains("Development server of plugin 'todo'"),
        "{}",
        server.log
    );
    assert_eq!(server.get("/api/todo/health", None).0, 200);
    let (status, body) = server.post("/api/todo/todos", None, r#"{"title":"My Todo"}"#);
    assert_eq!(status, 201, "{body}");
    assert!(
        body.contains(r#""createdBy":"user:development/guest""#),
        "{body}"
    );
    assert_eq!(
        server.get("/api/todo/todos", Some("mock-none-token")).0,
        401
    );
    let (status, body) = server.get("/api/todo/todos", Some("mock-service-token"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("My Todo"), "{body}");
    server.stop();

    let again = standalone();
    let (_, body) = again.get("/api/todo/todos", None);
    assert!(
        body.contains("My Todo"),
        "the data survives a restart: {body}"
    );
    again.stop();

    let refused = Command::new(&dev)
        .current_dir(&plugin)
        .env("NODE_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("never runs in production"), "{stderr}");
}

#[test]
fn the_development_server_restarts_when_the_config_changes() {
    let app = app();
    let _one_server = app.dev.lock().unwrap_or_else(|p| p.into_inner());
    let plugin = app.root.join("plugins/todo-backend");
    {
        let _build = cargo_lock();
        build(
            &app.root,
            &["-p", "todo-backend", "--bin", "todo-backend-dev"],
            "todo-backend-dev",
        );
    }
    let mut server = Server::start(
        Command::new(CLI)
            .arg("start")
            .current_dir(&plugin)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
            .env("APP_CONFIG_backend_listen_port", "0"),
    );
    let first = server.port;
    std::fs::write(
        app.root.join("app-config.local.yaml"),
        "todo:\n  note: changed by the test\n",
    )
    .unwrap();
    server.wait_for_line("changed; restarting");
    server.port = server.wait_for_listening();
    assert_eq!(
        server.get("/api/todo/health", None).0,
        200,
        "served again after the restart"
    );
    let _ = first;
    let child_gone = server.stop();
    assert!(
        child_gone,
        "stopping the command stops the server it started"
    );
    let _ = std::fs::remove_file(app.root.join("app-config.local.yaml"));
}

#[test]
fn bad_input_gets_one_line_and_writes_nothing() {
    let dir = temp_dir("bad");
    success(
        &cli(&dir, &["new", "app", "shop", "--backstage-path", REPO]),
        "new app",
    );
    let root = dir.join("shop");
    let before = snapshot(&dir);

    let cases: &[(&Path, &[&str], &str)] = &[
        (
            &root,
            &["new", "backend-plugin", "--id", "Shop_Cart"],
            "plugin ids are lowercase words joined by dashes (they appear in URLs: /api/<id>); write `--id shop-cart`",
        ),
        (
            &root,
            &[
                "new",
                "backend-plugin-module",
                "--plugin",
                "shop",
                "--id",
                "9lives",
            ],
            "module ids are lowercase words joined by dashes",
        ),
        (&root, &["new", "backend-plugin"], "missing --id <id>"),
        (
            &root,
            &["frobnicate"],
            "unrecognized subcommand 'frobnicate'",
        ),
        (
            &dir,
            &["new", "backend-plugin", "--id", "cart"],
            "no workspace found",
        ),
        (&dir, &["new", "app", "shop"], "already exists"),
        (
            &dir,
            &["new", "app", "9-shop"],
            "app names start with a letter",
        ),
        (&root, &["start"], "not inside a plugin's folder"),
    ];
    for (cwd, args, expected) in cases {
        let output = cli(cwd, args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line, got:\n{stderr}"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(snapshot(&dir), before, "{args:?} wrote something");
    }

    success(
        &cli(&root, &["new", "backend-plugin", "--id", "cart"]),
        "new backend-plugin",
    );
    let main_path = root.join("packages/backend/src/main.rs");
    let linked = std::fs::read_to_string(&main_path).unwrap();
    let after_first = snapshot(&dir);
    let twice = cli(&root, &["new", "backend-plugin", "--id", "cart"]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already exists"));
    assert_eq!(snapshot(&dir), after_first, "a second run changes nothing");
    assert_eq!(
        linked.matches("use cart_backend as _;").count(),
        1,
        "{linked}"
    );

    // A backend edited by hand, without `fn main` where it can be found: the line is printed.
    std::fs::write(&main_path, "backstage::main!();\n").unwrap();
    let out = success(
        &cli(&root, &["new", "backend-plugin", "--id", "orders"]),
        "new backend-plugin",
    );
    assert!(
        out.contains("add this line to the backend's main.rs: use orders_backend as _;"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&main_path).unwrap(),
        "backstage::main!();\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_backstage_dependency_can_be_a_path_a_git_url_or_a_version() {
    let dir = temp_dir("sources");
    let manifest = |name: &str, flags: &[&str]| {
        let mut args = vec!["new", "app", name];
        args.extend_from_slice(flags);
        success(&cli(&dir, &args), "new app");
        std::fs::read_to_string(dir.join(name).join("Cargo.toml")).unwrap()
    };
    let core = std::fs::canonicalize(Path::new(REPO).join("core")).unwrap();
    assert!(
        manifest("by-path", &["--backstage-path", REPO])
            .contains(&format!("backstage = {{ path = \"{}\" }}", core.display())),
        "a checkout's root means its core/ folder"
    );
    assert!(
        manifest(
            "by-git",
            &[
                "--backstage-git",
                "https://example.invalid/backstage-rs.git"
            ]
        )
        .contains(r#"backstage = { git = "https://example.invalid/backstage-rs.git" }"#)
    );
    assert!(
        manifest("by-version", &["--backstage-version", "0.1"])
            .contains(r#"backstage = { version = "0.1" }"#)
    );
    let both = cli(
        &dir,
        &[
            "new",
            "app",
            "both",
            "--backstage-version",
            "1",
            "--backstage-git",
            "x",
        ],
    );
    assert!(!both.status.success(), "one source at a time");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under `dir` with its contents, to see that nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.push((path.clone(), Vec::new()));
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Builds the app's backend; a copy of its binary that no other app's build overwrites.
fn build_backend(root: &Path) -> PathBuf {
    let _build = cargo_lock();
    let built = build(root, &["-p", "backend"], "backend");
    let copy = root.join("backend-under-test");
    std::fs::copy(&built, &copy).unwrap();
    copy
}

/// Builds with `args` in `root`; the path of the executable `bin`.
fn build(root: &Path, args: &[&str], bin: &str) -> PathBuf {
    let output = cargo(root).arg("build").args(args).output().unwrap();
    success(&output, &format!("cargo build {args:?}"));
    target_dir().join("debug").join(bin)
}

/// Sends each line `from` gives to `to`, on a thread of its own.
fn forward(from: impl std::io::Read + Send + 'static, to: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

/// A server process (or `cargo backstage start` running one) and its log.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: String,
    port: u16,
}

impl Server {
    fn start(command: &mut Command) -> Server {
        let mut child = command
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        // The server's log lines (stdout) and what `cargo backstage start` says (stderr).
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        forward(stdout, tx.clone());
        forward(stderr, tx);
        let mut server = Server {
            child,
            lines,
            log: String::new(),
            port: 0,
        };
        server.port = server.wait_for_listening();
        server.wait_for_line("Backend started in");
        server
    }

    /// Reads the log until a line contains `needle`; the line.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no log line with {needle:?}; the log:\n{}", self.log)
    }

    /// The port of the next `Listening on :<port>` line (Backstage's words).
    fn wait_for_listening(&mut self) -> u16 {
        let line = self.wait_for_line("Listening on :");
        line.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("GET", path, token, None)
    }

    fn post(&self, path: &str, token: Option<&str>, json: &str) -> (u16, String) {
        self.request("POST", path, token, Some(json))
    }

    /// One HTTP/1.1 request on its own connection: status and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = json.unwrap_or("");
        if json.is_some() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, body)
    }

    /// SIGTERM, then waits; whether the server's port is closed afterwards.
    fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            panic!("the server did not stop on SIGTERM; the log:\n{}", self.log);
        }
        TcpStream::connect(("127.0.0.1", self.port)).is_err()
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
