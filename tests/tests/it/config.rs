//! Configuration as Backstage reads it: one test per rule, against files the tests write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::support::*;
use backstage::config::{PluginConfig, Secret};
use backstage::discovery::Listen;
use backstage::prelude::*;
use backstage::{Backend, RootConfig};
use serde::Deserialize;
use serde_json::json;

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backstage-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> backstage::Result<RootConfig> {
    RootConfig::load_with_env(args.iter().map(|s| (*s).to_owned()), dir, env(vars))
}

fn error(result: backstage::Result<RootConfig>) -> String {
    result.unwrap_err().message().to_owned()
}

#[test]
fn default_files_local_wins_and_objects_merge_arrays_replace() {
    let d = dir("defaults");
    write(
        &d,
        "app-config.yaml",
        "a:\n  keep: 1\n  list: [1, 2]\n  over: main\n",
    );
    write(
        &d,
        "app-config.local.yaml",
        "a:\n  list: [3]\n  over: local\n",
    );
    let config = load(&d, &[], &[]).unwrap();
    assert_eq!(
        config.get::<serde_json::Value>("a").unwrap(),
        json!({"keep": 1, "list": [3], "over": "local"})
    );
    assert_eq!(
        config.source_of("a.over"),
        Some(
            d.join("app-config.local.yaml")
                .display()
                .to_string()
                .as_str()
        )
    );
    assert_eq!(
        config.source_of("a.keep"),
        Some(d.join("app-config.yaml").display().to_string().as_str())
    );
}

#[test]
fn config_arguments_are_read_in_order_instead_of_the_defaults() {
    let d = dir("args");
    write(&d, "app-config.yaml", "from: default\n");
    write(&d, "one.yaml", "from: one\nonly-one: 1\n");
    write(&d, "two.yaml", "from: two\n");
    let config = load(&d, &["--config", "one.yaml", "--config=two.yaml"], &[]).unwrap();
    assert_eq!(config.get::<String>("from").unwrap(), "two");
    assert_eq!(config.get::<u8>("only-one").unwrap(), 1);
    assert!(error(load(&d, &["--config", "missing.yaml"], &[])).contains("missing.yaml"));
}

#[test]
fn environment_overrides_win_and_parse_json() {
    let d = dir("env");
    write(
        &d,
        "app-config.yaml",
        "backend:\n  listen:\n    port: 7007\n    host: 0.0.0.0\n",
    );
    let config = load(
        &d,
        &[],
        &[
            ("APP_CONFIG_backend_listen_port", "7010"),
            ("APP_CONFIG_carmen_greeting", "Hi there"),
            ("APP_CONFIG_carmen_tags", "[\"a\"]"),
        ],
    )
    .unwrap();
    assert_eq!(config.get::<u16>("backend.listen.port").unwrap(), 7010);
    assert_eq!(
        config.get::<String>("backend.listen.host").unwrap(),
        "0.0.0.0"
    );
    assert_eq!(config.get::<String>("carmen.greeting").unwrap(), "Hi there");
    assert_eq!(config.get::<Vec<String>>("carmen.tags").unwrap(), ["a"]);
    assert_eq!(
        config.source_of("backend.listen.port"),
        Some("APP_CONFIG_ environment variables")
    );
    let err = error(load(&d, &[], &[("APP_CONFIG_backend__port", "1")]));
    assert!(
        err.contains("invalid environment config key 'APP_CONFIG_backend__port'"),
        "{err}"
    );
}

#[test]
fn variables_are_substituted_and_unset_ones_leave_the_value_absent() {
    let d = dir("subst");
    write(
        &d,
        "app-config.yaml",
        "db:\n  url: postgres://${DB_USER}@${DB_HOST}:5432\n  password: ${DB_PASSWORD}\n  literal: $${DB_HOST}\n  fallback: ${DB_PORT:-5432}\n  list: [\"${DB_HOST}\", \"${UNSET}\"]\n",
    );
    let config = load(&d, &[], &[("DB_USER", "app"), ("DB_HOST", "db.internal")]).unwrap();
    assert_eq!(
        config.get::<String>("db.url").unwrap(),
        "postgres://app@db.internal:5432"
    );
    assert!(
        !config.has("db.password"),
        "a value with an unset variable is absent"
    );
    assert_eq!(config.get::<String>("db.literal").unwrap(), "${DB_HOST}");
    assert_eq!(config.get::<String>("db.fallback").unwrap(), "5432");
    assert_eq!(
        config.get::<Vec<String>>("db.list").unwrap(),
        ["db.internal"]
    );
}

#[test]
fn env_file_and_include_resolve_relative_to_the_including_file() {
    let d = dir("include");
    write(
        &d,
        "conf/app-config.yaml",
        "token:\n  $env: TOKEN\nmissing:\n  $env: NOT_SET\ncert:\n  $file: secrets/cert.pem\ndb:\n  $include: parts/db.yaml#database.primary\nall:\n  $include: parts/all.json\n",
    );
    write(
        &d,
        "conf/secrets/cert.pem",
        "-----BEGIN-----\nabc\n-----END-----\n\n  \n",
    );
    write(
        &d,
        "conf/parts/db.yaml",
        "database:\n  primary:\n    host: db\n    password:\n      $file: ../secrets/cert.pem\n    nested:\n      $include: more.yaml\n",
    );
    write(&d, "conf/parts/more.yaml", "deep: true\n");
    write(
        &d,
        "conf/parts/all.json",
        r#"{"a": [1, 2], "b": {"c": "${TOKEN}"}}"#,
    );
    let config = load(
        &d,
        &["--config", "conf/app-config.yaml"],
        &[("TOKEN", "t0k")],
    )
    .unwrap();
    assert_eq!(config.get::<String>("token").unwrap(), "t0k");
    assert!(!config.has("missing"));
    assert_eq!(
        config.get::<String>("cert").unwrap(),
        "-----BEGIN-----\nabc\n-----END-----"
    );
    assert_eq!(config.get::<String>("db.host").unwrap(), "db");
    assert_eq!(
        config.get::<String>("db.password").unwrap(),
        "-----BEGIN-----\nabc\n-----END-----"
    );
    assert!(config.get::<bool>("db.nested.deep").unwrap());
    assert_eq!(
        config.get::<serde_json::Value>("all").unwrap(),
        json!({"a": [1, 2], "b": {"c": "t0k"}})
    );
    assert_eq!(
        config.source_of("db.host"),
        Some(d.join("conf/parts/db.yaml").display().to_string().as_str())
    );
}

#[test]
fn typed_reading() {
    let config = RootConfig::from_value(json!({ "a": { "x": 1, "y": [true], "z": null } }));
    assert_eq!(config.get::<u32>("a.x").unwrap(), 1);
    assert_eq!(config.get_optional::<u32>("a.nope").unwrap(), None);
    assert_eq!(config.get_optional::<u32>("a.z").unwrap(), None);
    assert!(config.has("a.y") && !config.has("a.z") && !config.has("b"));
    assert_eq!(config.keys("a"), ["x", "y", "z"]);
    assert_eq!(config.keys(""), ["a"]);
    let a = config.sub("a").unwrap();
    assert_eq!(a.get::<Vec<bool>>("y").unwrap(), [true]);
    assert!(config.sub("b").is_none());
    let err = config.get::<String>("a.x").unwrap_err();
    assert!(err.message().contains("invalid config value at 'a.x' in config given in code: invalid type: integer `1`, expected a string"), "{}", err.message());
}

#[test]
fn listen_in_every_form() {
    let listen = |value: serde_json::Value| {
        Listen::from_config(&RootConfig::from_value(
            json!({ "backend": { "listen": value } }),
        ))
    };
    let of = |host: &str, port| Listen {
        host: host.into(),
        port,
    };
    assert_eq!(listen(json!(7008)).unwrap(), of("", 7008));
    assert_eq!(listen(json!("7008")).unwrap(), of("", 7008));
    assert_eq!(listen(json!(":7008")).unwrap(), of("", 7008));
    assert_eq!(
        listen(json!("127.0.0.1:7008")).unwrap(),
        of("127.0.0.1", 7008)
    );
    assert_eq!(listen(json!("[::1]:7008")).unwrap(), of("::1", 7008));
    assert_eq!(
        listen(json!({ "host": "0.0.0.0", "port": 7008 })).unwrap(),
        of("0.0.0.0", 7008)
    );
    assert_eq!(listen(json!({ "port": "7008" })).unwrap(), of("", 7008));
    assert_eq!(
        listen(json!({ "host": "localhost" })).unwrap(),
        of("localhost", 7007)
    );
    assert_eq!(
        Listen::from_config(&RootConfig::empty()).unwrap(),
        of("", 7007)
    );
    for bad in [json!("host:port"), json!(-1), json!(70000), json!([7007])] {
        let err = listen(bad.clone()).unwrap_err();
        assert!(
            err.message().starts_with("backend.listen"),
            "{bad}: {}",
            err.message()
        );
    }
}

#[test]
fn bad_input_is_a_clear_error_naming_the_source() {
    let d = dir("bad");
    write(&d, "broken.yaml", "a:\n  b: [1, 2\n  c: 3\n");
    let err = error(load(&d, &["--config", "broken.yaml"], &[]));
    assert!(
        err.contains("broken.yaml") && err.contains("line") && err.contains("column"),
        "{err}"
    );

    write(&d, "inc-missing.yaml", "a:\n  $include: nowhere.yaml\n");
    let err = error(load(&d, &["--config", "inc-missing.yaml"], &[]));
    assert!(
        err.contains("at 'a' in") && err.contains("nowhere.yaml"),
        "{err}"
    );

    write(&d, "cycle-a.yaml", "x:\n  $include: cycle-b.yaml\n");
    write(&d, "cycle-b.yaml", "y:\n  $include: cycle-a.yaml\n");
    let err = error(load(&d, &["--config", "cycle-a.yaml"], &[]));
    assert!(err.contains("forms a cycle"), "{err}");

    std::fs::create_dir_all(d.join("a-directory")).unwrap();
    write(&d, "file-dir.yaml", "a:\n  $file: a-directory\n");
    let err = error(load(&d, &["--config", "file-dir.yaml"], &[]));
    assert!(err.contains("a-directory is a directory"), "{err}");

    write(&d, "siblings.yaml", "a:\n  $include: x.yaml\n  other: 1\n");
    assert!(
        error(load(&d, &["--config", "siblings.yaml"], &[])).contains("cannot have sibling keys")
    );

    write(&d, "format.yaml", "a:\n  $include: x.txt\n");
    write(&d, "x.txt", "a: 1\n");
    assert!(error(load(&d, &["--config", "format.yaml"], &[])).contains("no configuration format"));

    write(&d, "not-object.yaml", "a:\n  $include: scalar.yaml#x.y\n");
    write(&d, "scalar.yaml", "x: 3\n");
    assert!(
        error(load(&d, &["--config", "not-object.yaml"], &[]))
            .contains("value at 'x' in included file")
    );

    write(&d, "list.yaml", "- 1\n- 2\n");
    assert!(error(load(&d, &["--config", "list.yaml"], &[])).contains("must hold a mapping"));

    let deep = format!("a: {}1{}\n", "[".repeat(5000), "]".repeat(5000));
    write(&d, "deep.yaml", &deep);
    let err = error(load(&d, &["--config", "deep.yaml"], &[]));
    assert!(err.contains("deep.yaml"), "{err}");

    let file = std::fs::File::create(d.join("huge.yaml")).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    let err = error(load(&d, &["--config", "huge.yaml"], &[]));
    assert!(
        err.contains("huge.yaml") && err.contains("limited to"),
        "{err}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Whatever the files hold, loading answers with a config or an error, never a panic.
    #[test]
    fn the_loader_never_panics(text in "[a-z:${}\\[\\]#\\-\"' \n\t.0-9]{0,200}", included in "[a-z:${}\\[\\]# \n0-9]{0,80}") {
        let d = dir("fuzz");
        write(&d, "app-config.yaml", &format!("a:\n  $include: inc.yaml\nb: {text}\n"));
        write(&d, "inc.yaml", &included);
        write(&d, "raw.yaml", &text);
        let _ = load(&d, &[], &[("X", "1")]);
        let _ = load(&d, &["--config", "raw.yaml"], &[("APP_CONFIG_a_b", &text)]);
    }
}

#[test]
fn the_fuzz_corpus_loads_without_panicking() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus/config");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let d = dir("corpus");
        std::fs::copy(&path, d.join("app-config.yaml")).unwrap();
        let _ = load(&d, &[], &[]);
        count += 1;
    }
    assert!(count >= 5, "the corpus has {count} files");
}

// ---- a plugin's typed section

#[derive(Debug, Deserialize)]
pub struct TypedConfig {
    pub name: String,
    #[serde(default)]
    pub retries: u8,
    pub token: Secret<String>,
}

#[backend_plugin(id = "typed")]
pub struct Typed {
    #[inject]
    config: PluginConfig<TypedConfig>,
    #[inject]
    logger: Logger,
}

#[routes]
impl Typed {
    #[init]
    async fn init(&self) {
        // Debug output of a typed section shows no secret.
        self.logger
            .info(format!("typed config: {:?}", *self.config));
    }

    #[route(get, "/", auth = "unauthenticated")]
    async fn show(&self) -> String {
        format!(
            "{} {} {}",
            self.config.name,
            self.config.retries,
            self.config.token.expose().len()
        )
    }
}

fn typed_backend(typed: serde_json::Value) -> backstage::BackendBuilder {
    Backend::builder().plugin::<Typed>().config_value(
        json!({ "typed": typed, "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } }),
    )
}

#[tokio::test]
async fn a_plugin_reads_its_section_typed() {
    let backend = typed_backend(json!({ "name": "carmen", "token": "s3cr3t-value" }))
        .start()
        .await
        .unwrap();
    assert_eq!(
        read(
            client()
                .get(backend.url("/api/typed/"))
                .send()
                .await
                .unwrap()
        )
        .await
        .2,
        "carmen 0 12"
    );
}

#[tokio::test]
async fn a_missing_or_ill_typed_plugin_value_fails_start_up_with_key_file_and_expectation() {
    let err = typed_backend(json!({ "token": "x" }))
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "invalid config value at 'typed' in config given in code: missing field `name`"
        ),
        "{err}"
    );
    let err = typed_backend(json!({ "name": "n", "retries": "many", "token": "x" }))
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid config value at 'typed.retries' in config given in code: invalid type: string \"many\", expected u8"), "{err}");
    let err = typed_backend(json!({ "name": "n", "token": 12345678 }))
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at 'typed.token'") && err.contains("its value is not shown"),
        "{err}"
    );
    assert!(!err.contains("12345678"), "{err}");

    // from a file: the file is named
    let d = dir("typed-file");
    write(
        &d,
        "app-config.yaml",
        "typed:\n  name: n\n  token: x\n  retries: 300\n",
    );
    let config = load(&d, &[], &[]).unwrap();
    let err = Backend::builder()
        .plugin::<Typed>()
        .config(config)
        .start()
        .await
        .unwrap_err()
        .to_string();
    let file = d.join("app-config.yaml").display().to_string();
    assert!(
        err.contains(&format!(
            "invalid config value at 'typed.retries' in {file}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let captured = logs();
    let config = json!({
        "typed": { "name": "carmen", "token": "plugin-secret-9f8e7d" },
        "backend": {
            "listen": { "host": "127.0.0.1", "port": 0 },
            "auth": {
                "externalAccess": [
                    { "type": "static", "options": { "token": "static-secret-1a2b3c", "subject": "ci" } },
                    { "type": "legacy", "options": { "secret": "legacy-secret-4d5e6f", "subject": "old" } },
                ],
                "keys": [{ "secret": "keys-secret-7a8b9c" }],
            },
        },
    });
    let backend = Backend::builder()
        .plugin::<Typed>()
        .config_value(config.clone())
        .start()
        .await
        .unwrap();
    for token in [
        "static-secret-1a2b3c",
        "wrong-secret-0000000",
        "legacy-secret-4d5e6f",
    ] {
        let _ = client()
            .get(backend.url("/api/typed/missing"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    let _ = client()
        .get(backend.url("/api/typed/"))
        .send()
        .await
        .unwrap();
    tracing::info!("config: {:?}", RootConfig::from_value(config));
    backend.stop().await.unwrap();
    let logs = captured.text();
    assert!(
        logs.contains("typed config"),
        "the plugin logged its config: {logs}"
    );
    for secret in [
        "plugin-secret-9f8e7d",
        "static-secret-1a2b3c",
        "legacy-secret-4d5e6f",
        "keys-secret-7a8b9c",
        "wrong-secret-0000000",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
